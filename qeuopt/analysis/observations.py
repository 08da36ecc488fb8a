"""A study's results as pandas: observations from MLflow, ratings from the rating store.

Observations are read from MLflow, the record of results: every FINISHED condition run of
the study, with its ``factor.<name>`` params (MLflow keeps params as text) mapped back to
the exact level objects of the study file, so a level 0.35 comes back as the float 0.35.
Human ratings come from the rating store (:mod:`qeuopt.ratings.store`), their source of
truth. Responses: ``clip_mean`` (alias ``clip``) or any metric of the condition runs,
``rating`` (mean rating, 1-5), ``combined`` (the rating/CLIP blend of the ratings module) and
``preference`` (the Bradley-Terry score of the pairwise choices, :mod:`qeuopt.ratings.preferences`).

Seed as a noise factor: with ``per="image"`` every image is an observation and the images
of a condition (one seed each) are its replicates. ``per="condition"`` gives one value per
condition (``combined`` and ``preference`` exist only so).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd

from qeuopt.errors import InputError, NoDataError
from qeuopt.track.schema import CLIP_IMAGE_PREFIX, CLIP_MEAN, FACTOR_PREFIX, FOLDER_TAG, RATING_MEAN, TRIAL_TAG, column

CLIP_RESPONSE = CLIP_MEAN
RATING_RESPONSES = ("rating", "combined")
PREFERENCE_RESPONSE = "preference"
PER_IMAGE = {CLIP_MEAN: CLIP_IMAGE_PREFIX, "rating": "rating"}  # responses that exist per image
TRIAL, FOLDER = column("tags", TRIAL_TAG), column("tags", FOLDER_TAG)
RESERVED = ("condition", "run_id", "folder", "base_seed", "image", "image_seed")


def resolve_response(spec, response: str | None) -> str:
    """``None`` means the study's objective; ``clip`` is short for ``clip_mean``."""
    name = response or spec.design.objective
    return CLIP_RESPONSE if name == "clip" else name


def resolve_per(response: str, per: str) -> str:
    """``auto``: one row per image where the response has per-image values (seeds replicate)."""
    if per not in ("auto", "image", "condition"):
        raise InputError(f"`per`: allowed: auto, image, condition; given {per!r}")
    if per == "image" and response not in PER_IMAGE:
        raise InputError(
            f"`per`: `image` is allowed only for {', '.join(PER_IMAGE)}; the response "
            f"{response!r} has one value per condition, use `condition`"
        )
    if per == "auto":
        return "image" if response in PER_IMAGE else "condition"
    return per


# --------------------------------------------------------------------------- observations
def condition_table(study) -> pd.DataFrame:
    """One row per FINISHED condition run: condition, run_id, folder, base_seed, the factor
    levels (exact objects of the study file) and every metric (``clip_mean``, ...)."""
    runs = study.runs()
    if runs.empty or "status" not in runs.columns or not (runs["status"] == "FINISHED").any():
        raise NoDataError(
            f"`study`: {study.name!r} has no finished condition runs in MLflow yet; run it first with `qeuopt run`"
        )
    runs = runs[runs["status"] == "FINISHED"]
    factors = study.spec.space.factors
    clash = [f.name for f in factors if f.name in RESERVED]
    if clash:
        raise InputError(f"`factors`: names {', '.join(RESERVED)} are used by the analysis tables; given {clash}")
    lookups = {f.name: _level_lookup(f) for f in factors}
    metrics = [c for c in runs.columns if c.startswith("metrics.")]
    rows, skipped = [], []
    for _, run in runs.iterrows():
        values = _run_levels(run, lookups, skipped)
        if values is not None:
            rows.append(
                {
                    "condition": int(run[TRIAL]),
                    "run_id": run["run_id"],
                    "folder": run.get(FOLDER),
                    "base_seed": int(run["params.seed"]),
                    **values,
                    **{m[len("metrics.") :]: run[m] for m in metrics},
                }
            )
    if skipped:
        warnings.warn(
            "left out condition runs whose levels are not in the study file now: " + "; ".join(skipped), stacklevel=2
        )
    if not rows:
        raise NoDataError(
            f"`factors`: no finished condition run of {study.name!r} has levels that are all in "
            f"the study file now ({'; '.join(skipped[:3])}...)"
        )
    rows.sort(key=lambda row: row["condition"])
    frame = pd.DataFrame(rows)
    for f in factors:  # object columns keep the exact level objects: pandas would turn 6 into 6.0
        frame[f.name] = pd.Series([row[f.name] for row in rows], dtype=object)
    return frame


def _level_lookup(factor) -> dict[str, Any]:
    """Text as MLflow stores it -> the level object; two levels with one text are ambiguous."""
    lookup: dict[str, Any] = {}
    for level in factor.levels:
        text = str(level)
        if text in lookup:
            raise InputError(
                f"`factors.{factor.name}`: levels {lookup[text]!r} and {level!r} read the same in "
                f"MLflow ({text!r}); give levels that differ as text"
            )
        lookup[text] = level
    return lookup


def _run_levels(run, lookups: Mapping[str, dict], skipped: list[str]) -> dict[str, Any] | None:
    values = {}
    for name, lookup in lookups.items():
        text = run.get(column("params", FACTOR_PREFIX + name))
        if not isinstance(text, str) or text not in lookup:
            skipped.append(f"trial {run.get(TRIAL)}: {name}={text!r}")
            return None
        values[name] = lookup[text]
    return values


def study_observations(
    study, response: str | None = None, per: str = "condition", *, conditions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The study's results as one row per condition, or per image (``per="image"``).

    Columns: ``condition`` (trial number), ``run_id``, ``folder``, ``base_seed``, one column
    per factor, the response (named as asked), and per image also ``image`` (index in the
    grid) and ``image_seed`` (the seed that image was generated with: ``base_seed + image``;
    not called ``seed``, which may be a factor). Conditions nobody rated have NaN ratings.
    ``conditions``: the study's :func:`condition_table` when the caller has read it already.
    """
    spec = study.spec
    response = resolve_response(spec, response)
    per = resolve_per(response, per)
    conditions = condition_table(study) if conditions is None else conditions
    keep = ["condition", "run_id", "folder", "base_seed", *spec.space.names]
    if response in RATING_RESPONSES:
        return _with_ratings(study, conditions, keep, response, per)
    if response == PREFERENCE_RESPONSE:
        scores = preference_scores_of(study, conditions)
        return conditions[keep].assign(preference=conditions["condition"].map(scores["preference_score"]))
    if per == "image":
        return _clip_per_image(conditions, keep)
    if response not in conditions.columns:
        known = sorted(set(conditions.columns) - set(keep) - {"condition"})
        raise InputError(
            f"`response`: allowed: clip, rating, combined, preference or a metric of the runs "
            f"({', '.join(known)}); given {response!r}"
        )
    return conditions[keep + [response]].copy()


def _clip_per_image(conditions: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    prefix = PER_IMAGE[CLIP_RESPONSE]
    images = sorted(c for c in conditions.columns if c.startswith(prefix))
    long = conditions[keep + images].melt(id_vars=keep, var_name="image", value_name=CLIP_RESPONSE)
    long = long.dropna(subset=[CLIP_RESPONSE])  # a smaller grid in an edited study: fewer images
    long["image"] = long["image"].str[len(prefix) :].astype(int)
    return _finish_per_image(long, keep, CLIP_RESPONSE)


def _finish_per_image(long: pd.DataFrame, keep: list[str], response: str) -> pd.DataFrame:
    long["image_seed"] = long["base_seed"].astype(int) + long["image"].astype(int)
    long = long.sort_values(["condition", "image"], ignore_index=True)
    return long[keep + ["image", "image_seed", response]]


def rating_scores(study, conditions: pd.DataFrame):
    """``(per_condition, raw)``: :func:`qeuopt.ratings.store.condition_scores` of the study
    (rating_mean, rating_count, rating_z, clip_mean, combined per condition) and the raw
    rating rows. Raises when nobody has rated anything yet."""
    from qeuopt.ratings.database import ratings_exist
    from qeuopt.ratings.store import condition_scores, store_for

    no_ratings = NoDataError(
        f"`response`: {study.name!r} has no ratings yet; rate its images with "
        f"`qeuopt rate` (or import a CSV with `qeuopt ratings import`), or use the "
        f"CLIP scores with `--response clip`"
    )
    if not ratings_exist(study.spec):  # do not create an empty store
        raise no_ratings
    with store_for(study.spec) as store:
        raw = store.frame(study.name)
    if raw["rating"].notna().sum() == 0:
        raise no_ratings
    clip = dict(zip(conditions["condition"], conditions[CLIP_RESPONSE]))
    return condition_scores(raw, clip), raw


def _with_ratings(study, conditions, keep, response, per) -> pd.DataFrame:
    scores, raw = rating_scores(study, conditions)
    if per == "condition":
        column = RATING_MEAN if response == "rating" else "combined"
        values = conditions["condition"].map(scores[column])
        return conditions[keep].assign(**{response: values.astype(float)})
    rated = raw.dropna(subset=["rating"])
    per_image = rated.groupby(["condition", "image"], as_index=False)["rating"].mean()
    long = conditions[keep].merge(per_image, on="condition", how="inner")
    return _finish_per_image(long, keep, "rating")


def preference_scores_of(study, conditions: pd.DataFrame) -> pd.DataFrame:
    """:func:`qeuopt.ratings.preferences.preference_scores` of the study's finished
    conditions (NaN where a condition was never compared). Raises when there is no choice yet."""
    from qeuopt.ratings.database import ratings_exist
    from qeuopt.ratings.preferences import preference_scores, preference_store_for

    no_choices = NoDataError(
        f"`response`: {study.name!r} has no pairwise choices yet; compare its conditions "
        f"on the page's /pairs (`qeuopt rate`), or use `--response rating` or `clip`"
    )
    if not ratings_exist(study.spec):  # do not create an empty store
        raise no_choices
    with preference_store_for(study.spec) as store:
        choices = store.choices(study.name)
    scores = preference_scores(choices, [int(c) for c in conditions["condition"]])
    if not scores["preference_count"].any():
        raise no_choices
    return scores
