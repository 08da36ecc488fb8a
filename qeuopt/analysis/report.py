"""How an analysis is shown: terminal tables, response graphs, and the record in MLflow.

Everything an analysis puts in MLflow goes to the study's *parent* run, under
``analysis/<response>/``: ``main_effects.png`` (mean of the response per level, the classic
response graph), ``sn_ratio.png`` (SN ratio per level), ``effects.json``, ``anova.json``,
``conditions.json`` (MLflow tables), ``report.txt`` (what the terminal showed) and the
confirmation study TOML. Running the analysis again replaces them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from qeuopt.track.schema import OPTIMUM_TAG

SN_NAMES = {"larger": "larger-the-better", "smaller": "smaller-the-better", "nominal": "nominal-the-best"}


def number(value: Any, digits: int = 4) -> str:
    """A compact number for tables: 4 significant digits, blanks for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    return f"{value:.{digits}g}"


def setting_label(setting: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} = {value}" for name, value in setting.items())


def table(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> str:
    """A left-aligned text table (artist names read better so than pandas' right alignment)."""
    cells = [list(columns)] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in cells)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


# ------------------------------------------------------------------------------ terminal
def format_analysis(result) -> str:
    t = result.taguchi
    count = len(result.observations)
    conditions = len(t.conditions)
    per = f"{conditions} conditions x seeds" if result.per == "image" else f"{conditions} conditions"
    parts = [
        f"{result.study}: {result.response} by {result.design} design, {count} observations ({per})",
        "",
        _effects_text(result),
        "",
        _anova_text(result),
        "",
        _optimum_text(result),
    ]
    if result.notes:
        parts += ["", "Notes:"] + [f"- {note}" for note in result.notes]
    return "\n".join(parts)


def _effects_text(result) -> str:
    t = result.taguchi
    best_mean, best_sn = t.optimum, t.optimum_sn if result.sn_meaningful else {}
    rows, previous = [], None
    for _, row in t.effects.iterrows():
        marks = ("*" if best_mean.get(row["factor"]) == row["level"] else "") + (
            "+" if best_sn.get(row["factor"]) == row["level"] else ""
        )
        rows.append(
            {
                "factor": row["factor"] if row["factor"] != previous else "",
                "level": str(row["level"]),
                "mean": number(row["mean"]),
                "SN dB": number(row["sn_db"], 4) if result.sn_meaningful else "",
                "n": int(row["n"]),
                "best": marks,
            }
        )
        previous = row["factor"]
    title = (
        f"Main effects: mean of the condition means per level; SN ratio {SN_NAMES[t.sn]} in dB; "
        f"best level * by mean, + by SN"
    )
    return title + "\n" + table(rows, ["factor", "level", "mean", "SN dB", "n", "best"])


def _anova_text(result) -> str:
    rows = []
    for _, row in result.anova.iterrows():
        rows.append(
            {
                "source": row["source"],
                "dof": int(row["dof"]),
                "SS": number(row["ss"]),
                "MS": number(row["ms"]),
                "F": "pooled" if row["pooled"] else number(row["f"], 3),
                "rho %": "" if row["pooled"] else number(row["contribution_pct"], 3),
            }
        )
    kind = "" if result.balanced else ", Type II sums of squares by least squares (unbalanced data)"
    title = f"ANOVA over every observation{kind}; rho % = contribution ratio"
    return title + "\n" + table(rows, ["source", "dof", "SS", "MS", "F", "rho %"])


def _optimum_text(result) -> str:
    t = result.taguchi
    low, high = t.interval
    if not result.balanced:
        interval = "no interval (the data are not balanced)"
    elif math.isnan(low):
        interval = "no interval (no error degrees of freedom)"
    else:
        interval = f"95% interval {number(low)} .. {number(high)}"
    lines = [f"Optimum by mean: {setting_label(t.optimum)}"]
    if result.sn_meaningful:
        same = dict(t.optimum_sn) == {k: v for k, v in t.optimum.items() if k in t.optimum_sn}
        lines.append(f"Optimum by SN:   {'the same' if same else setting_label(t.optimum_sn)}")
    lines.append(
        f"Predicted {t.response} at the optimum: {number(t.predicted)}, {interval} "
        f"(additive over {', '.join(t.used_factors) or 'no factor'})"
    )
    if result.confirmation:
        lines.append(
            f"Confirmation study: {result.confirmation}\n  run it with `qeuopt run {result.confirmation}`;"
            f" its mean {t.response} should fall in the interval."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------- MLflow
def log_analysis(tracker, result) -> str | None:
    """Figures, tables, the report and the confirmation study on the study's parent run."""
    run_id = tracker.find_study_run(result.study)
    if run_id is None:
        warnings.warn(f"no parent run of study {result.study!r} in MLflow: the analysis is not logged", stacklevel=2)
        return None
    from qeuopt.analysis.figures import effects_figure

    t, folder = result.taguchi, f"analysis/{result.response}"
    tracker.log_figure(
        run_id,
        effects_figure(t, "mean", f"{result.study}: response graph of {t.response}"),
        f"{folder}/main_effects.png",
    )
    if result.sn_meaningful:
        tracker.log_figure(
            run_id,
            effects_figure(t, "sn_db", f"{result.study}: SN ratio of {t.response}, {SN_NAMES[t.sn]}"),
            f"{folder}/sn_ratio.png",
        )
    for name, frame in (("effects", t.effects), ("anova", result.anova), ("conditions", t.conditions)):
        tracker.log_table(run_id, plain_levels(frame), f"{folder}/{name}.json")
    tracker.log_text(run_id, result.report(), f"{folder}/report.txt")
    if result.confirmation:
        tracker.log_artifact(run_id, result.confirmation, folder)
    tracker.log(run_id, tags={f"{OPTIMUM_TAG}.{result.response}": setting_label(t.optimum)[:5000]})
    return run_id


def plain_levels(frame: pd.DataFrame) -> pd.DataFrame:
    """Level columns as text, so a table mixing artist names and numbers reads cleanly."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(str)
    return frame
