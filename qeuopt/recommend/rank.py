"""Rank full settings, including ones never generated.

:func:`rank` fits the model chosen by cross-validation
(:class:`~qeuopt.model.select.ModelSelector`: no model, additive, additive + pair term,
or a Gaussian process) to a study's observations and runs every combination of levels
(:func:`qeuopt.levels.full_grid`) through it. Each listed setting carries its prediction, an
interval, its support (how many observed conditions share its levels) and whether it
was observed; by default the list is diverse over the artist pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from qeuopt.errors import InputError, NoDataError
from qeuopt.levels import check_levels, full_grid
from qeuopt.model.setting import SettingModel, is_numeric_level

__all__ = ["SettingModel", "rank"]


# -------------------------------------------------------------------------------- rank
def rank(
    levels: Mapping[str, Sequence],
    observations: pd.DataFrame,
    response: str,
    *,
    top: int = 20,
    pair="auto",
    model=None,
    random_state: int = 0,
    diverse: bool = True,
    level: float = 0.9,
) -> pd.DataFrame:
    """The ``top`` settings by predicted score, tried or not.

    ``observations``: one row per observation (replicates/seeds allowed) with a column per
    factor of ``levels`` and the ``response``; rows without a response are ignored.
    ``model``: an unfitted estimator to clone; default a
    :class:`~qeuopt.model.select.ModelSelector` that picks the model by cross-validation
    (``pair="auto"``: the pair term competes; None: it does not; (A, B): forced).
    ``diverse``: each artist pair (the ``pair`` factors, or the two text factors with most
    levels) at most once until every pair is listed, so the list is not one pair with
    inert settings varied; False ranks purely by prediction.
    Returns factor columns, ``predicted``, ``lower`` and ``upper`` (a ``level`` interval of
    the setting's mean score under the model), ``support`` (the fewest observed conditions
    that share any one of its levels; 0: some level never tried), ``observed``,
    ``observed_mean`` (NaN when not observed) and ``n_observed``, best first. ``.attrs``
    holds ``model`` (the chosen model's name), ``reason`` and ``cv_rmse``.
    """
    names, _ = check_levels(levels)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise InputError(f"`top`: an int >= 1 is needed; given {top!r}")
    data = _observed_rows(levels, observations, response)
    if model is None:
        model = _default_model(levels, pair, random_state)
    fitted = clone(model).fit(data[names], data[response].to_numpy(float))
    candidates = full_grid(levels, random_state=random_state)
    if len(candidates) < np.prod([len(v) for v in levels.values()], dtype=float):
        candidates = _with_observed(candidates, data[names])  # the grid was sampled
    table = candidates.assign(predicted=fitted.predict(candidates))
    table = table.sort_values("predicted", ascending=False, kind="stable")
    keys = diversity_factors(levels, pair) if diverse else []
    best = _diverse_head(table, keys, top) if keys else table.head(top)
    best = best.reset_index(drop=True)
    lower, upper = _interval(fitted, best[names], level)
    best.insert(len(names) + 1, "lower", lower)
    best.insert(len(names) + 2, "upper", upper)
    best.insert(len(names) + 3, "support", condition_support(data[names], best[names]))
    ranked = _join_observed(best, data, names, response)
    ranked.attrs.update(
        model=getattr(fitted, "chosen_", type(fitted).__name__),
        reason=getattr(fitted, "reason_", "a model given by the caller"),
        cv_rmse=dict(getattr(fitted, "cv_rmse_", {})),
        diverse_by=list(keys),
    )
    return ranked


def _default_model(levels, pair, random_state: int):
    from qeuopt.model.select import CANDIDATES, ModelSelector

    if pair is None:
        candidates = tuple(c for c in CANDIDATES if c != "pair")
    elif isinstance(pair, str):
        candidates = CANDIDATES
    else:
        candidates = ("pair",)  # named by the user: used, and its error still reported
    return ModelSelector(
        candidates, pair="auto" if pair is None else pair, levels=dict(levels), random_state=random_state
    )


def diversity_factors(levels: Mapping[str, Sequence], pair="auto") -> list[str]:
    """The factors a diverse list varies first: ``pair`` when named, else the two factors
    with text levels and the most levels (the artist slots), else the one such factor."""
    if pair is not None and not isinstance(pair, str):
        return list(pair)
    textual = [f for f, values in levels.items() if not any(is_numeric_level(v) for v in values)]
    textual.sort(key=lambda f: -len(levels[f]))  # stable: ties keep column order
    return textual[:2]


def _diverse_head(table: pd.DataFrame, keys: list[str], top: int) -> pd.DataFrame:
    """The best row of each distinct ``keys`` combination first, then the best of the rest."""
    firsts = table.drop_duplicates(subset=keys, keep="first").head(top)
    if len(firsts) < top:
        firsts = pd.concat([firsts, table.drop(index=firsts.index).head(top - len(firsts))])
    return firsts


def _interval(model, X: pd.DataFrame, level: float) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(model, "predict_interval"):
        return model.predict_interval(X, level=level)
    if hasattr(model, "predict_std"):
        from scipy.stats import norm

        mean, half = model.predict(X), norm.ppf(0.5 + level / 2) * model.predict_std(X)
        return mean - half, mean + half
    return np.full(len(X), np.nan), np.full(len(X), np.nan)  # a foreign model that cannot say


def condition_support(observed: pd.DataFrame, settings: pd.DataFrame) -> np.ndarray:
    """Per setting, the fewest distinct observed conditions that share one of its levels
    (min over factors); 0 when some level was never observed."""
    conditions = observed.drop_duplicates()
    counts = [settings[f].map(conditions[f].value_counts()).fillna(0).to_numpy(int) for f in settings.columns]
    return np.min(counts, axis=0) if counts else np.zeros(len(settings), dtype=int)


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
    return pd.concat([candidates, pd.DataFrame(extra, columns=candidates.columns, dtype=object)], ignore_index=True)


def _join_observed(table: pd.DataFrame, data: pd.DataFrame, names: list[str], response: str) -> pd.DataFrame:
    stats: dict[tuple, list] = {}
    for key, value in zip(map(tuple, data[names].itertuples(index=False)), data[response].astype(float)):
        stats.setdefault(key, []).append(value)
    keys = list(map(tuple, table[names].itertuples(index=False)))
    counts = np.array([len(stats.get(k, ())) for k in keys], dtype=int)
    means = np.array([np.mean(stats[k]) if k in stats else np.nan for k in keys])
    return table.assign(observed=counts > 0, observed_mean=means, n_observed=counts)
