"""Rank full settings, including ones never generated.

:func:`rank` fits :class:`~qeuopt.model.setting.SettingModel` to a study's observations
and runs every combination of levels (:func:`qeuopt.levels.full_grid`) through it, marking
which settings were observed and how many observations support each prediction.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from qeuopt.errors import InputError, NoDataError
from qeuopt.levels import check_levels, full_grid
from qeuopt.model.setting import SettingModel

__all__ = ["SettingModel", "rank"]


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
    names, _ = check_levels(levels)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise InputError(f"`top`: an int >= 1 is needed; given {top!r}")
    data = _observed_rows(levels, observations, response)
    if model is None:
        model = SettingModel(pair=pair, levels=dict(levels), random_state=random_state)
    fitted = clone(model).fit(data[names], data[response].to_numpy(float))
    candidates = full_grid(levels, random_state=random_state)
    if len(candidates) < np.prod([len(v) for v in levels.values()], dtype=float):
        candidates = _with_observed(candidates, data[names])  # the grid was sampled
    table = candidates.assign(predicted=fitted.predict(candidates))
    best = table.sort_values("predicted", ascending=False, kind="stable").head(top).reset_index(drop=True)
    best.insert(len(names) + 1, "support", _support(fitted, best[names]))
    return _join_observed(best, data, names, response)


def _observed_rows(levels, observations: pd.DataFrame, response: str) -> pd.DataFrame:
    missing = [c for c in [*levels, response] if c not in getattr(observations, "columns", [])]
    if missing:
        raise InputError(f"`observations`: needs the factor columns and {response!r}; missing {missing}")
    data = observations[observations[response].notna()]
    if data.empty:
        raise NoDataError(f"`observations`: no row has a value in {response!r}")
    for name, allowed in levels.items():
        unknown = [v for v in pd.unique(data[name]) if v not in list(allowed)]
        if unknown:
            raise InputError(f"`observations.{name}`: allowed levels {list(allowed)}; the data has {unknown}")
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
