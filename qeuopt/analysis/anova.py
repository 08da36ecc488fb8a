"""ANOVA of a Taguchi analysis: factor sums of squares over every observation, pooling
into error when the design leaves none, contribution ratios, and the half-width of the
additive prediction's interval. Formulas: DESIGN.md; used by :mod:`qeuopt.analysis.effects`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from qeuopt.errors import InputError


def used_factors(anova: pd.DataFrame) -> list[str]:
    rows = anova[~anova["pooled"] & ~anova["source"].isin(["error", "total"])]
    return list(rows["source"])


def _factor_sums(data: pd.DataFrame, names: list[str], response: str) -> dict[str, tuple[int, float]]:
    grand = data[response].mean()
    sums = {}
    for factor in names:
        groups = data.groupby(factor, sort=False)[response]
        sums[factor] = (groups.ngroups - 1, float((groups.size() * (groups.mean() - grand) ** 2).sum()))
    return sums


def _pooled(sums: dict[str, tuple[int, float]], total_dof: int, pool) -> list[str]:
    if isinstance(pool, str) and pool in ("auto", "none"):
        pooled: list[str] = []
        by_size = sorted(sums, key=lambda f: sums[f][1])
        # pool only a saturated design, and never every factor
        while (
            pool == "auto"
            and len(pooled) < len(sums) - 1
            and total_dof - sum(sums[f][0] for f in sums if f not in pooled) <= 0
        ):
            pooled.append(by_size[len(pooled)])
        return pooled
    unknown = [f for f in ([pool] if isinstance(pool, str) else pool) if f not in sums]
    if unknown:
        raise InputError(f"`pool`: allowed: auto, none or factors among {list(sums)}; given {pool!r}")
    return list(pool)


def anova_table(data: pd.DataFrame, names: list[str], response: str, pool) -> pd.DataFrame:
    y = data[response].to_numpy()
    ss_total = float(((y - y.mean()) ** 2).sum())
    sums = _factor_sums(data, names, response)
    pooled = _pooled(sums, len(y) - 1, pool)
    kept = [f for f in names if f not in pooled]
    error_dof = len(y) - 1 - sum(sums[f][0] for f in kept)
    # unequal replication makes factor sums overlap slightly; the error never goes negative
    error_ss = max(ss_total - sum(sums[f][1] for f in kept), 0.0)
    error_ms = error_ss / error_dof if error_dof > 0 else math.nan
    rows = [_anova_row(f, *sums[f], f in pooled, error_ms, ss_total) for f in names]
    explained = sum(r["contribution_pct"] for r in rows if not r["pooled"])
    rows.append(
        dict(
            source="error",
            dof=error_dof,
            ss=error_ss,
            ms=error_ms,
            f=math.nan,
            contribution_pct=100.0 - explained if ss_total > 0 else math.nan,
            pooled=False,
        )
    )
    rows.append(
        dict(
            source="total",
            dof=len(y) - 1,
            ss=ss_total,
            ms=math.nan,
            f=math.nan,
            contribution_pct=100.0 if ss_total > 0 else math.nan,
            pooled=False,
        )
    )
    return pd.DataFrame(rows)


def _anova_row(factor: str, dof: int, ss: float, pooled: bool, error_ms: float, ss_total: float) -> dict:
    ms = ss / dof if dof > 0 else math.nan
    error_for_rho = 0.0 if math.isnan(error_ms) else error_ms
    with np.errstate(divide="ignore", invalid="ignore"):
        f_ratio = math.nan if pooled else float(np.divide(ms, error_ms))
    rho = math.nan if pooled or ss_total <= 0 else (ss - dof * error_for_rho) / ss_total * 100
    return dict(source=factor, dof=dof, ss=ss, ms=ms, f=f_ratio, contribution_pct=rho, pooled=pooled)


def prediction_half_width(anova: pd.DataFrame, used: list[str], observations: int, confidence: float) -> float:
    error = anova.set_index("source").loc["error"]
    if error["dof"] <= 0 or math.isnan(error["ms"]):
        return math.nan
    used_dof = anova.set_index("source").loc[used, "dof"].sum()
    effective_n = observations / (1 + used_dof)
    f_value = stats.f.ppf(confidence, 1, int(error["dof"]))
    return math.sqrt(f_value * error["ms"] / effective_n)
