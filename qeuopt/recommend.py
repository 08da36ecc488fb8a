"""Rank full settings, including ones never generated.

:func:`rank` fits :class:`~qeuopt.model.setting.SettingModel` to a study's observations
and runs every combination of levels (:func:`candidate_settings`) through it, marking
which settings were observed and how many observations support each prediction.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from qeuopt.model.setting import SettingModel

__all__ = ["SettingModel", "candidate_settings", "rank"]


# -------------------------------------------------------------------------- candidates
def candidate_settings(levels: Mapping[str, Sequence], max_candidates: int = 200_000,
                       random_state: int = 0) -> pd.DataFrame:
    """Every combination of levels, in grid order; a uniform sample without replacement
    (still in grid order) when there are more than ``max_candidates``.

    Columns hold the level objects exactly as given (object dtype: ints stay ``int``).
    """
    names, values = _check_levels(levels)
    sizes = [len(v) for v in values]
    total = int(np.prod(sizes, dtype=object))
    if not isinstance(max_candidates, (int, np.integer)) or max_candidates < 1:
        raise ValueError(f"`max_candidates`: an int >= 1 is needed; given {max_candidates!r}")
    if total <= max_candidates:
        flat = np.arange(total, dtype=np.int64)
    elif total < 2**62:
        flat = np.sort(np.random.default_rng(random_state).choice(total, max_candidates, replace=False))
    else:
        raise ValueError(f"`levels`: the grid has {total} settings, too many to sample from; "
                         f"use fewer factors or levels")
    return _decode(flat, names, values, sizes)


def _check_levels(levels: Mapping[str, Sequence]) -> tuple[list[str], list[list]]:
    if not isinstance(levels, Mapping) or not levels:
        raise ValueError(f"`levels`: a mapping factor -> list of levels is needed; given {levels!r}")
    empty = [name for name, values in levels.items() if len(values) == 0]
    if empty:
        raise ValueError(f"`levels`: every factor needs at least one level; {empty} have none")
    return list(levels), [list(v) for v in levels.values()]


def _decode(flat: np.ndarray, names: list[str], values: list[list], sizes: list[int]) -> pd.DataFrame:
    columns, rest = {}, flat
    for name, options, size in zip(reversed(names), reversed(values), reversed(sizes)):
        codes, rest = rest % size, rest // size  # the last factor varies fastest
        column = np.empty(len(flat), dtype=object)
        column[:] = [options[c] for c in codes.tolist()]
        columns[name] = column
    # object dtype keeps the level objects: pandas would turn ints into int64, str into its str dtype
    return pd.DataFrame({name: columns[name] for name in names}, dtype=object)


# -------------------------------------------------------------------------------- rank
def rank(levels: Mapping[str, Sequence], observations: pd.DataFrame, response: str, *, top: int = 20,
         pair="auto", model=None, random_state: int = 0) -> pd.DataFrame:
    """The ``top`` settings by predicted score, tried or not.

    ``observations``: one row per observation (replicates/seeds allowed) with a column per
    factor of ``levels`` and the ``response``; rows without a response are ignored.
    ``model``: an unfitted estimator to clone instead of ``SettingModel(pair=pair)``.
    Returns factor columns, ``predicted``, ``support``, ``observed``, ``observed_mean``
    (NaN when not observed) and ``n_observed``, best first.
    """
    names, _ = _check_levels(levels)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"`top`: an int >= 1 is needed; given {top!r}")
    data = _observed_rows(levels, observations, response)
    if model is None:
        model = SettingModel(pair=pair, levels=dict(levels), random_state=random_state)
    fitted = clone(model).fit(data[names], data[response].to_numpy(float))
    candidates = candidate_settings(levels, random_state=random_state)
    if len(candidates) < np.prod([len(v) for v in levels.values()], dtype=float):
        candidates = _with_observed(candidates, data[names])  # the grid was sampled
    table = candidates.assign(predicted=fitted.predict(candidates))
    best = table.sort_values("predicted", ascending=False, kind="stable").head(top).reset_index(drop=True)
    best.insert(len(names) + 1, "support", _support(fitted, best[names]))
    return _join_observed(best, data, names, response)


def _observed_rows(levels, observations: pd.DataFrame, response: str) -> pd.DataFrame:
    missing = [c for c in [*levels, response] if c not in getattr(observations, "columns", [])]
    if missing:
        raise ValueError(f"`observations`: needs the factor columns and {response!r}; missing {missing}")
    data = observations[observations[response].notna()]
    if data.empty:
        raise ValueError(f"`observations`: no row has a value in {response!r}")
    for name, allowed in levels.items():
        unknown = [v for v in pd.unique(data[name]) if v not in list(allowed)]
        if unknown:
            raise ValueError(f"`observations.{name}`: allowed levels {list(allowed)}; the data has {unknown}")
    return data


def _with_observed(candidates: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    # a sampled grid may have left out settings that were tried: those always compete
    keys = set(map(tuple, candidates.itertuples(index=False)))
    extra = [row for row in map(tuple, observed.drop_duplicates().itertuples(index=False)) if row not in keys]
    if not extra:
        return candidates
    return pd.concat([candidates, pd.DataFrame(extra, columns=candidates.columns, dtype=object)],
                     ignore_index=True)


def _support(model, candidates: pd.DataFrame) -> np.ndarray:
    if hasattr(model, "support"):
        return model.support(candidates)
    return np.full(len(candidates), -1)  # a foreign model that cannot say


def _join_observed(table: pd.DataFrame, data: pd.DataFrame, names: list[str], response: str) -> pd.DataFrame:
    stats: dict[tuple, list] = {}
    for key, value in zip(map(tuple, data[names].itertuples(index=False)), data[response].astype(float)):
        stats.setdefault(key, []).append(value)
    keys = list(map(tuple, table[names].itertuples(index=False)))
    counts = np.array([len(stats.get(k, ())) for k in keys], dtype=int)
    means = np.array([np.mean(stats[k]) if k in stats else np.nan for k in keys])
    return table.assign(observed=counts > 0, observed_mean=means, n_observed=counts)
