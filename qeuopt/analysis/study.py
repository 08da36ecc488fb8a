"""From a study's results to a decision: Taguchi analysis, ANOVA, confirmation study.

    study = Study.from_file("studies/demo_tiny_l9.toml")
    study_observations(study, "clip_mean", per="image")   # one row per image, as pandas
    result = analyze_study(study)                          # effects, ANOVA, optimum, plots
    print(result.report())

The observations (:mod:`qeuopt.analysis.observations`) are one row per image by default: the
images of a condition, one seed each, are its replicates, so seed is the noise factor.
The SN ratio then rewards settings that look good whatever the seed, and the ANOVA gets
an error estimate even from a saturated array.

A balanced design (orthogonal array, full factorial, all conditions present) gets the
classic Taguchi ANOVA of :func:`qeuopt.analysis.effects.analyze`. Otherwise (an Optuna
search, conditions missing or unrated) one-way sums of squares overlap and can exceed
the total, so the ANOVA is taken from least squares instead: Type II sums of squares,
each factor's after all the others; the level means are still plain means, and the
report says they are confounded.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qeuopt.analysis.anova import least_squares_anova
from qeuopt.analysis.observations import (
    CLIP_RESPONSE,
    RATING_RESPONSES,
    condition_table,
    rating_scores,
    resolve_per,
    resolve_response,
    study_observations,
)

__all__ = [
    "CLIP_RESPONSE",
    "RATING_RESPONSES",
    "StudyAnalysis",
    "analyze_study",
    "condition_table",
    "is_balanced",
    "least_squares_anova",
    "rating_scores",
    "resolve_per",
    "resolve_response",
    "study_observations",
    "write_confirmation",
]
CONFIRMATION_SEEDS = 3


# ------------------------------------------------------------------------------- analysis
@dataclass(frozen=True, eq=False)  # holds DataFrames: compare fields, not instances
class StudyAnalysis:
    """A Taguchi analysis of one study's response, with what is needed to read it right."""

    study: str
    response: str
    per: str  # "image": seeds are replicates (noise factor); "condition": one value each
    design: str  # the array used, "full" or "optuna"
    balanced: bool  # every pair of factors has proportional level counts in the data
    sn_meaningful: bool  # larger/smaller-the-better need positive values
    taguchi: Any  # qeuopt.analysis.effects.TaguchiAnalysis
    anova: pd.DataFrame  # taguchi.anova when balanced, else least_squares_anova
    observations: pd.DataFrame
    notes: tuple[str, ...]
    confirmation: Path | None = None

    def report(self) -> str:
        from qeuopt.analysis.report import format_analysis

        return format_analysis(self)


def is_balanced(conditions: pd.DataFrame, levels: Mapping[str, list]) -> bool:
    """Main effects are unconfounded when every level was tried and, for every pair of
    factors, n(a, b) * N == n(a) * n(b) (proportional frequencies: orthogonal arrays,
    dummy-level assignments and full factorials all satisfy it)."""
    total = len(conditions)
    counts = {f: conditions[f].value_counts() for f in levels}
    if any(len(counts[f]) != len(levels[f]) for f in levels):
        return False
    for a, b in itertools.combinations(levels, 2):
        pairs = conditions.groupby([a, b], sort=False).size()
        for la, lb in itertools.product(counts[a].index, counts[b].index):
            if pairs.get((la, lb), 0) * total != counts[a][la] * counts[b][lb]:
                return False
    return True


def analyze_study(
    study,
    response: str | None = None,
    *,
    sn: str = "larger",
    per: str = "auto",
    target: float | None = None,
    log: bool = True,
    confirmation: str | Path | bool = True,
    seeds: int = CONFIRMATION_SEEDS,
) -> StudyAnalysis:
    """Main effects (mean and SN per level), ANOVA, predicted optimum with its interval.

    ``confirmation``: True writes ``<study name>_confirm.toml`` beside the study file (or
    in the working folder for a study built in Python), a path writes there, False
    writes nothing. ``log`` puts figures, tables and the report on the study's parent run.
    """
    from qeuopt.analysis.confirmation import fresh_seeds
    from qeuopt.analysis.effects import analyze
    from qeuopt.run.queue import array_name

    spec = study.spec
    response = resolve_response(spec, response)
    per = resolve_per(response, per)
    data = study_observations(study, response, per)
    levels = {f.name: list(f.levels) for f in spec.space.factors if len(f.levels) > 1}
    taguchi = analyze(data, levels, response, condition="condition", sn=sn, target=target)
    balanced = is_balanced(taguchi.conditions, levels)
    anova = taguchi.anova if balanced else least_squares_anova(data, list(levels), response)
    sn_meaningful = sn != "larger" or bool((data[response] > 0).all())
    design = array_name(spec)
    notes = _notes(design, balanced, per, sn, sn_meaningful, anova, data)
    path = None
    if confirmation:
        path = _confirmation_path(spec, confirmation)
        write_confirmation(
            spec,
            taguchi.optimum,
            path,
            fresh_seeds(spec, data["base_seed"].max(), seeds),
            _prediction_text(taguchi, balanced),
        )
    result = StudyAnalysis(
        study.name, response, per, design, balanced, sn_meaningful, taguchi, anova, data, tuple(notes), path
    )
    if log:
        from qeuopt.analysis.report import log_analysis

        log_analysis(study.tracker(), result)
    return result


def _prediction_text(taguchi, balanced: bool) -> str:
    low, high = taguchi.interval
    text = f"{taguchi.response} predicted {taguchi.predicted:.4g}"
    return text + (f", 95% interval {low:.4g} .. {high:.4g}" if balanced and np.isfinite(low) else "")


def _notes(design, balanced, per, sn, sn_meaningful, anova, data) -> list[str]:
    notes = []
    if not balanced:
        why = "an adaptive search" if design == "optuna" else "conditions are missing or unrated"
        notes.append(
            f"Not a balanced design ({why}): each level mean mixes in the other factors' levels, "
            f"and the ANOVA is not from a balanced design: Type II sums of squares by least squares "
            f"(each factor after the others), which need not add up to the total. A rough guide."
        )
    elif design == "full":
        notes.append("Full factorial: balanced; interactions are part of the error.")
    if per == "image":
        size = int(data.groupby("condition").size().median())
        notes.append(
            f"Seed is the noise factor: each condition's images (about {size} seeds) are its "
            f"replicates; the SN ratio is over seeds and seed noise is in the error."
        )
    elif sn != "nominal":
        notes.append("One value per condition: the SN ratio is a transform of that value, not a noise measure.")
    if not sn_meaningful:
        notes.append(
            f"SN ratio ({sn}-the-better) needs positive values and the response has some <= 0: "
            f"use the means (or --sn nominal)."
        )
    hidden = list(anova.loc[(anova["dof"] == 0) & ~anova["source"].isin(["error", "total"]), "source"])
    if hidden:
        notes.append(
            f"In these data {', '.join(hidden)} cannot be told apart from the other factors "
            f"(0 degrees of freedom of their own): run more conditions to separate them."
        )
    pooled = list(anova.loc[anova["pooled"], "source"])
    if pooled:
        notes.append(
            f"No error degrees of freedom left, so the smallest factors were pooled into error: {', '.join(pooled)}."
        )
    return notes


def _confirmation_path(spec, confirmation) -> Path:
    if confirmation is True:
        return Path(spec.base_dir) / f"{spec.name}_confirm.toml"
    return Path(confirmation)


def write_confirmation(spec, optimum: Mapping[str, Any], path: Path, seeds: list[int], prediction: str) -> Path:
    """The optimum as a study of its own: every factor at its best level, new seeds."""
    from qeuopt.analysis.confirmation import confirmation_study, write_study_toml

    setting = {f.name: optimum.get(f.name, f.levels[0]) for f in spec.space.factors}
    data, header = confirmation_study(spec, [setting], name=f"{spec.name}_confirm", seeds=seeds, out_dir=path.parent)
    header.append(f"Taguchi prediction for this setting: {prediction}.")
    return write_study_toml(data, header, path)
