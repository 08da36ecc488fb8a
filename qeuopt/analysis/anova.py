"""ANOVA of main effects, two ways with the same columns: the Taguchi ANOVA of a balanced
design (factor sums of squares over every observation, pooling into error when the design
leaves none, contribution ratios, the half-width of the additive prediction's interval;
used by :mod:`qeuopt.analysis.effects`) and a least-squares (type II) ANOVA for data that
are not balanced."""

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
    rows += closing_rows(error_dof, error_ss, error_ms, explained, len(y) - 1, ss_total)
    return pd.DataFrame(rows)


def _anova_row(factor: str, dof: int, ss: float, pooled: bool, error_ms: float, ss_total: float) -> dict:
    """One factor's row of either ANOVA. A perfect fit (error mean square 0) gives F = inf
    for a factor that moves the response and NaN for one that does not."""
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


def closing_rows(error_dof: int, error_ss: float, error_ms: float, explained: float, total_dof: int, ss_total: float):
    """The error row (it takes the contribution the factors leave, so the column sums to
    100) and the total row; contributions are NaN when the response does not vary."""
    varies = ss_total > 0
    nan = math.nan
    return [
        dict(
            source="error",
            dof=error_dof,
            ss=error_ss,
            ms=error_ms,
            f=nan,
            contribution_pct=100.0 - explained if varies else nan,
            pooled=False,
        ),
        dict(
            source="total",
            dof=total_dof,
            ss=ss_total,
            ms=nan,
            f=nan,
            contribution_pct=100.0 if varies else nan,
            pooled=False,
        ),
    ]


def least_squares_anova(data: pd.DataFrame, factors: list[str], response: str) -> pd.DataFrame:
    """Type II ANOVA of main effects by least squares, for data that are not balanced.

    A factor's sum of squares is what the residual grows by when it leaves the model of all
    main effects, its dof the rank it adds (a factor confounded with others adds less).
    Same columns as the Taguchi ANOVA; rho % = (SS - dof V_e) / SS_T, the error row the rest.
    """
    y = data[response].to_numpy(float)
    blocks = {f: pd.get_dummies(data[f].map(repr), drop_first=True).to_numpy(float) for f in factors}
    full_rss, full_rank = _residual(y, list(blocks.values()))
    error_dof = len(y) - full_rank
    error_ms = full_rss / error_dof if error_dof > 0 else float("nan")
    total = float(((y - y.mean()) ** 2).sum())
    rows = []
    for factor in factors:
        rss, rank = _residual(y, [b for f, b in blocks.items() if f != factor])
        dof = full_rank - rank
        ss = max(rss - full_rss, 0.0) if dof else 0.0  # dof 0: only rounding is left
        rows.append(_anova_row(factor, dof, ss, False, error_ms, total))
    explained = sum(r["contribution_pct"] for r in rows)
    rows += closing_rows(error_dof, full_rss, error_ms, explained, len(y) - 1, total)
    return pd.DataFrame(rows)


def _residual(y: np.ndarray, blocks: list[np.ndarray]) -> tuple[float, int]:
    """Residual sum of squares and rank of the least-squares fit of y on 1 + blocks."""
    X = np.column_stack([np.ones(len(y)), *blocks])
    coef, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)  # its rank: the same cut-off as matrix_rank's
    return float(((y - X @ coef) ** 2).sum()), int(rank)
