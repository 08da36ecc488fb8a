"""Taguchi analysis of scores: main effects, SN ratios, ANOVA, the optimum, a prediction.

:func:`analyze` takes one row per observation (an image, a seed), averages each
condition, and computes main effects, SN ratios, ANOVA with contribution ratios, the
optimum with an interval, and an additive prediction for any level combination.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qeuopt.analysis.anova import anova_table, prediction_half_width, used_factors
from qeuopt.errors import InputError, NoDataError

SN_KINDS = ("larger", "smaller", "nominal")


def sn_ratio(values: Sequence[float], kind: str = "larger") -> float:
    """Taguchi's signal-to-noise ratio of replicate observations, in dB (higher is better).

    ``larger``  -10 log10(mean(1/y^2)); -inf if some y is 0.
    ``smaller`` -10 log10(mean(y^2));   +inf if every y is 0.
    ``nominal``  10 log10(mean^2 / s^2) with s^2 the sample variance (ddof=1); NaN for a
                 single observation (no variance to estimate), +inf when s^2 = 0 and the
                 mean is not 0, NaN when both are 0.
    """
    _check_kind(kind)
    y = np.asarray(values, dtype=float).ravel()
    if y.size == 0:
        raise NoDataError("`values`: at least one observation is needed; given none")
    if kind == "larger":
        return -math.inf if np.any(y == 0) else float(-10 * np.log10(np.mean(1.0 / y**2)))
    if kind == "smaller":
        square = float(np.mean(y**2))
        return math.inf if square == 0 else -10 * math.log10(square)
    if y.size < 2:
        return math.nan
    mean, variance = float(y.mean()), float(y.var(ddof=1))
    if variance == 0:
        return math.nan if mean == 0 else math.inf
    return -math.inf if mean == 0 else 10 * math.log10(mean**2 / variance)


def _check_kind(kind: str) -> None:
    if kind not in SN_KINDS:
        raise InputError(f"`sn`: allowed: {', '.join(SN_KINDS)}; given {kind!r}")


@dataclass(frozen=True, eq=False)  # DataFrames have no single truth value to compare by
class TaguchiAnalysis:
    """Main effects, ANOVA, optimum and additive prediction of a Taguchi experiment.

    ``effects``: factor, level, mean (mean of the condition means at that level), sn_db
    (mean of the condition SN ratios there, NaN ones skipped), n (conditions at that level).
    ``anova``: source, dof, ss, ms, f, contribution_pct, pooled; rows per factor, then
    ``error`` and ``total``. ``conditions``: one row per condition (levels, mean, sn_db, n).
    """

    effects: pd.DataFrame
    anova: pd.DataFrame
    conditions: pd.DataFrame
    optimum: dict[str, Any]
    optimum_sn: dict[str, Any]
    predicted: float
    interval: tuple[float, float]
    grand_mean: float
    grand_sn: float
    response: str
    sn: str

    @property
    def used_factors(self) -> list[str]:
        """The factors that enter predictions: all that were not pooled into error."""
        return used_factors(self.anova)

    def level_mean(self, factor: str, level: Any) -> float:
        """The main-effect mean of one level of a factor."""
        return _level_mean(self.effects, factor, level)

    def predict(self, condition: Mapping[str, Any]) -> float:
        """Additive prediction for any level combination, tried or not (pooled factors ignored)."""
        return _additive(self.effects, self.grand_mean, self.used_factors, condition)


def analyze(
    frame: pd.DataFrame,
    factors: Sequence[str] | Mapping[str, Sequence],
    response: str,
    *,
    condition: str | None = "condition",
    sn: str = "larger",
    pool: str | Sequence[str] = "auto",
    target: float | None = None,
    confidence: float = 0.95,
) -> TaguchiAnalysis:
    """Analyse one row per observation; replicates of a condition share its ``condition`` id.

    ``factors`` is a list of columns (levels in order of first appearance) or a mapping
    column -> levels in the order to report. ``condition=None`` groups by the factor levels.
    Rows whose response is NaN (e.g. not rated yet) are dropped.

    The ANOVA uses every observation, so replicates (seeds) give an error estimate even when
    the array is saturated; without replicates this is the ANOVA of the condition values.
    With ``pool="auto"`` and no error degrees of freedom left, the factors with the smallest
    sums of squares are pooled into error until it has some (standard pooling); ``pool`` may
    also list factors to pool, or be ``"none"``. Contribution rho% = (SS - dof V_e) / SS_T,
    and the error row takes the rest, so the column sums to 100.

    The optimum takes the best level by mean (max for ``larger``, min for ``smaller``, the
    closest to ``target`` for ``nominal``; without a target, nominal uses the SN optimum, as
    in two-step optimisation) and by SN ratio. The prediction adds the effects of the
    factors that are not pooled; its interval is +-sqrt(F(1, dof_e) V_e / n_eff) with
    n_eff = N / (1 + dof of those factors) and N the number of observations.
    """
    _check_kind(sn)
    names = list(factors)
    data, key = _observations(frame, names, response, condition)
    orders = _level_orders(data, factors)  # after dropping NaN responses: only levels with data
    runs = _condition_table(data, names, response, key, sn)
    effects = _effects(runs, orders)
    anova = anova_table(data, names, response, pool)
    grand_mean, grand_sn = float(runs["mean"].mean()), float(runs["sn_db"].mean())
    optimum_sn = _best_levels(effects, "sn_db", "larger")
    optimum = optimum_sn if sn == "nominal" and target is None else _best_levels(effects, "mean", sn, target)
    used = used_factors(anova)
    predicted = _additive(effects, grand_mean, used, optimum)
    half = prediction_half_width(anova, used, len(data), confidence)
    return TaguchiAnalysis(
        effects,
        anova,
        runs,
        optimum,
        optimum_sn,
        predicted,
        (predicted - half, predicted + half),
        grand_mean,
        grand_sn,
        response,
        sn,
    )


def _level_mean(effects: pd.DataFrame, factor: str, level: Any) -> float:
    rows = effects[effects["factor"] == factor]
    for value, mean in zip(rows["level"], rows["mean"]):
        if value == level:
            return float(mean)
    raise InputError(f"`{factor}`: allowed levels {list(rows['level'])}; given {level!r}")


def _additive(effects: pd.DataFrame, grand_mean: float, used: list[str], condition: Mapping[str, Any]) -> float:
    total = grand_mean
    for factor in used:
        if factor not in condition:
            raise InputError(f"`{factor}`: a level is needed to predict; given only {sorted(condition)}")
        total += _level_mean(effects, factor, condition[factor]) - grand_mean
    return total


def _level_orders(data: pd.DataFrame, factors) -> dict[str, list]:
    orders = {f: list(pd.unique(data[f])) for f in factors}
    if isinstance(factors, Mapping):
        for f, given in factors.items():
            unknown = [v for v in orders[f] if v not in list(given)]
            if unknown:
                raise InputError(f"`factors.{f}`: allowed levels {list(given)}; the data has {unknown}")
            orders[f] = [v for v in given if v in orders[f]]
    return orders


def _observations(frame: pd.DataFrame, names: list[str], response: str, condition: str | None):
    missing = [f for f in names if f not in frame.columns]
    if missing or not names:
        raise InputError(
            f"`factors`: at least one factor column of the data is needed; given {names} "
            f"(missing {missing}); columns are {list(frame.columns)}"
        )
    for column, field_name in ((response, "response"), (condition, "condition")):
        if column is not None and column not in frame.columns:
            raise InputError(f"`{field_name}`: column {column!r} is not in the data; columns are {list(frame.columns)}")
    data = frame[frame[response].notna()].copy()
    if data.empty:
        raise NoDataError(f"`response`: column {response!r} has no values")
    data[response] = data[response].astype(float)
    key = condition or "_condition"
    if condition is None:
        data[key] = data.groupby(names, sort=False, dropna=False).ngroup()
    return data, key


def _condition_table(data: pd.DataFrame, names: list[str], response: str, key: str, sn: str) -> pd.DataFrame:
    groups = data.groupby(key, sort=False)
    varying = groups[names].nunique(dropna=False).max()
    if (varying > 1).any():
        bad = list(varying[varying > 1].index)
        raise InputError(f"`condition`: each condition needs one level per factor; {bad} vary within one")
    runs = groups[names].first()
    runs["mean"] = groups[response].mean()
    runs["sn_db"] = groups[response].apply(lambda y: sn_ratio(y, sn))
    runs["n"] = groups.size()
    return runs.reset_index()


def _effects(runs: pd.DataFrame, orders: dict[str, list]) -> pd.DataFrame:
    parts = []
    for factor, levels in orders.items():
        table = (
            runs.groupby(factor, sort=False)
            .agg(mean=("mean", "mean"), sn_db=("sn_db", "mean"), n=("mean", "size"))
            .reindex(levels)
        )
        parts.append(table.rename_axis("level").reset_index().assign(factor=factor))
    return pd.concat(parts, ignore_index=True)[["factor", "level", "mean", "sn_db", "n"]]


def _best_levels(effects: pd.DataFrame, column: str, kind: str, target: float | None = None) -> dict[str, Any]:
    best = {}
    for factor, rows in effects.groupby("factor", sort=False):
        values = rows[column].astype(float)
        if values.isna().all():
            continue
        if kind == "nominal":
            score = -(values - target).abs()
        else:
            score = values if kind == "larger" else -values
        best[factor] = rows["level"].loc[score.idxmax()]
    return best
