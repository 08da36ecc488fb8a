"""Figures of a Taguchi analysis: the response graph of main effects and SN ratios."""

from __future__ import annotations

import math
from typing import Any

from qeuopt.analysis.effects import TaguchiAnalysis


def effects_figure(analysis: TaguchiAnalysis, column: str = "mean", title: str | None = None):
    """The classic response graph: one panel per factor, ``column`` ("mean", or "sn_db" for
    the SN plot) per level, the grand value dashed.

    Builds a :class:`matplotlib.figure.Figure` directly, so pyplot's global state and the
    backend stay untouched; ``fig.savefig`` renders with Agg.
    """
    from matplotlib.figure import Figure

    effects = analysis.effects
    factors = list(dict.fromkeys(effects["factor"]))
    reference = analysis.grand_mean if column == "mean" else analysis.grand_sn
    fig = Figure(figsize=(1.2 + 2.6 * len(factors), 3.6), layout="constrained")
    axes = fig.subplots(1, len(factors), sharey=True, squeeze=False)[0]
    for ax, factor in zip(axes, factors):
        rows = effects[effects["factor"] == factor]
        x = list(range(len(rows)))
        ax.plot(x, rows[column].to_numpy(float), marker="o")
        if math.isfinite(reference):
            ax.axhline(reference, linestyle="--", linewidth=1, color="grey")
        ax.set_xticks(x, [_short(level) for level in rows["level"]], rotation=30, ha="right")
        ax.set_xlabel(factor)
    axes[0].set_ylabel(f"mean {analysis.response}" if column == "mean" else f"SN ratio ({analysis.sn}), dB")
    if title:
        fig.suptitle(title)
    return fig


def _short(level: Any, width: int = 18) -> str:
    text = str(level)
    return text if len(text) <= width else text[: width - 1] + "\u2026"
