"""The T-method where the toolkit needs it: predict ratings nobody gave, and say which
numbers about a condition carry information about them.

Items (the columns of X, one number per condition):

- ``clip:<phrase>``: mean CLIP cosine of the condition's images with one phrase of the
  prompt. The phrases are the comma-separated parts of the template with A1111 weight
  syntax removed (``(beach, in the style of {style_b}:1.1)`` gives ``beach`` and
  ``in the style of {style_b}``), each placeholder filled with the condition's level, so
  every artist phrase and fixed words such as ``high quality`` are items; plus
  ``clip:negative prompt`` (the negative prompt as a whole, which good images should
  match less). Images are read again from the condition's folder on disk (the
  ``qeuopt.folder`` tag), or from the run's ``png/`` artifacts if the folder is gone, and
  scored with the study's CLIP model (``scoring.clip_model``).
- ``clip_mean``: the CLIP score the study logged (whole prompt, or ``scoring.text``).
- ``image:brightness``, ``image:saturation``, ``image:contrast``: mean luma, mean HSV
  saturation and luma standard deviation, in [0, 1], averaged over the images.
- ``factor:<name>``: the level of each numeric factor (not ``seed``: its value is a label).

Output y: the mean rating (1-5) or the combined score of the rated conditions.

Unit space: variant ``ta`` by default. Ratings have no natural "normal" group (the T1
unit space of a quality check), and a study has few rated conditions (9-36): Ta uses every
rated condition both for the origin (the means) and as signal data, where T1 would spend
its unit-space conditions on the origin alone. ``variant="t1"`` takes as unit space the
third of the rated conditions whose ratings are closest to the median (at least one, and
at least two left as signal), i.e. the "ordinary" conditions.

Items are selected by Taguchi's rule: gains from a two-level orthogonal array
(:meth:`TMethodRegressor.item_gains`); items with a positive gain are kept and the model is
fitted again on them (all items are kept if none has a positive gain).
"""

from __future__ import annotations

import re
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qeuopt.errors import InputError, NoDataError
from qeuopt.track.schema import CLIP_MEAN, RATING_MEAN

RATING_VARIANTS = ("ta", "t1")
_WEIGHT = re.compile(r":\s*-?\d+(?:\.\d+)?\s*$")  # the ":1.3" of "(word:1.3)"
_TAGS = re.compile(r"<[^>]*>")  # <lora:name:0.8> and the like: not words CLIP should read


def prompt_phrases(template: str) -> list[str]:
    """Comma-separated parts of a template without A1111 weights, placeholders kept."""
    phrases = []
    for part in template.split(","):
        text = _TAGS.sub("", part).translate(str.maketrans("", "", "()[]"))
        text = _WEIGHT.sub("", text).strip()
        if text and text not in phrases:
            phrases.append(text)
    return phrases


def image_statistics(image) -> dict[str, float]:
    luma = np.asarray(image.convert("L"), dtype=float) / 255.0
    saturation = np.asarray(image.convert("HSV"), dtype=float)[..., 1] / 255.0
    return {
        "image:brightness": float(luma.mean()),
        "image:saturation": float(saturation.mean()),
        "image:contrast": float(luma.std()),
    }


def _similarities(scorer, images: list, texts: list[str]) -> np.ndarray:
    """Mean cosine of the images with each text; the images are embedded once when the
    scorer can (ClipScorer), else scored per text (any ``score(images, text)`` scorer)."""
    if hasattr(scorer, "image_embeddings") and hasattr(scorer, "text_embedding"):
        embeddings = scorer.image_embeddings(images)
        return np.array([float(np.mean(embeddings @ scorer.text_embedding(t))) for t in texts])
    return np.array([float(np.mean(scorer.score(images, t))) for t in texts])


def _condition_images(row, tracker) -> list:
    """The PNGs of a condition, from its folder, else downloaded from its run (into a
    temporary folder that is removed once the images are in memory)."""
    folder = Path(row["folder"]) if isinstance(row["folder"], str) else None
    if folder is not None and folder.is_dir():
        return _read_images(folder, row)
    with tempfile.TemporaryDirectory(prefix="qeuopt-png-") as scratch:
        return _read_images(tracker.download(row["run_id"], "png", scratch), row)


def _read_images(folder: Path, row) -> list:
    from PIL import Image

    from qeuopt.generate.files import condition_images

    files = condition_images(folder)
    if not files:
        raise NoDataError(f"`condition` {row['condition']}: no images found in {folder}")
    images = []
    for path in files:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def condition_items(study, conditions: pd.DataFrame, scorer=None, tracker=None) -> pd.DataFrame:
    """The item table: one row per condition (index ``condition``), one column per item."""
    spec = study.spec
    scorer = scorer or study.default_scorer()
    tracker = tracker or study.tracker()
    phrases = prompt_phrases(spec.prompt.template)
    numeric = [
        f.name
        for f in spec.space.factors
        if f.name != "seed"
        and len(f.levels) > 1
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in f.levels)
    ]
    rows = []
    for _, row in conditions.iterrows():
        values = {name: row[name] for name in spec.space.names}
        images = _condition_images(row, tracker)
        texts = [string.Formatter().vformat(p, (), values) for p in phrases]
        names = [f"clip:{p}" for p in phrases]
        if spec.prompt.negative:
            texts, names = texts + [spec.prompt.negative], names + ["clip:negative prompt"]
        items = dict(zip(names, _similarities(scorer, images, texts)))
        items[CLIP_MEAN] = float(row[CLIP_MEAN])
        stats = [image_statistics(image) for image in images]
        items.update({k: float(np.mean([s[k] for s in stats])) for k in stats[0]})
        items.update({f"factor:{name}": float(values[name]) for name in numeric})
        rows.append({"condition": int(row["condition"]), **items})
    return pd.DataFrame(rows).set_index("condition")


def unit_space(y: np.ndarray) -> np.ndarray:
    """T1 unit space: the third of the samples closest to the median (>= 1, >= 2 left)."""
    size = min(max(1, round(len(y) / 3)), len(y) - 2)
    closest = np.argsort(np.abs(y - np.median(y)), kind="stable")[:size]
    mask = np.zeros(len(y), dtype=bool)
    mask[closest] = True
    return mask


@dataclass(frozen=True, eq=False)  # holds DataFrames
class RatingPrediction:
    """What the T-method learned from the rated conditions of a study."""

    study: str
    response: str
    variant: str
    items: pd.DataFrame  # index condition, one column per item (constant items dropped)
    gains: pd.Series  # dB gain per item, largest first
    selected: list[str]  # the items the final model uses
    overall_sn_db: float  # overall SN ratio of the final model on the rated conditions
    all_items_sn_db: float  # the same with every item
    predictions: pd.DataFrame  # condition, factor levels, observed (NaN: unrated), predicted, rated
    unit: list[int]  # unit-space conditions (t1); every rated condition for ta

    def report(self) -> str:
        from qeuopt.analysis.report import number, table

        rated = int(self.predictions["rated"].sum())
        lines = [
            f"T-method ({self.variant}) for {self.response}: {rated} rated conditions, "
            f"{len(self.items.columns)} items; overall SN {number(self.overall_sn_db)} dB with the "
            f"{len(self.selected)} selected items ({number(self.all_items_sn_db)} dB with all)",
            "",
            "Item gains (dB; positive = the item carries information about the ratings)",
        ]
        lines.append(
            table(
                (
                    {"item": k, "gain dB": number(v), "kept": "yes" if k in self.selected else ""}
                    for k, v in self.gains.items()
                ),
                ["item", "gain dB", "kept"],
            )
        )
        unrated = self.predictions[~self.predictions["rated"]]
        if len(unrated):
            lines += ["", "Predicted for conditions nobody rated, best first"]
            shown = unrated.sort_values("predicted", ascending=False)
            columns = [c for c in shown.columns if c not in ("observed", "rated")] + ["note"]
            lines.append(
                table(
                    (
                        {
                            **{c: number(r[c]) if c == "predicted" else r.get(c) for c in columns},
                            "note": self._note(r["predicted"]),
                        }
                        for _, r in shown.iterrows()
                    ),
                    columns,
                )
            )
        return "\n".join(lines)

    def _note(self, value: float) -> str:
        """Ratings live on a scale; an estimate beyond it extrapolates past the rated items."""
        from qeuopt.ratings.store import SCALE

        outside = self.response == "rating" and not SCALE[0] <= value <= SCALE[1]
        return f"outside {SCALE[0]}-{SCALE[1]}: extrapolated" if outside else ""


def predict_ratings(
    study, response: str = "rating", variant: str = "ta", scorer=None, log: bool = True
) -> RatingPrediction:
    """Fit the T-method from the items of the rated conditions and predict every condition."""
    from qeuopt.analysis.observations import condition_table, rating_scores

    if variant not in RATING_VARIANTS:
        raise InputError(f"`variant`: allowed: {', '.join(RATING_VARIANTS)}; given {variant!r}")
    if response not in ("rating", "combined"):
        raise InputError(f"`response`: allowed: rating, combined; given {response!r}")
    conditions = condition_table(study)
    scores, _ = rating_scores(study, conditions)
    y_all = conditions["condition"].map(scores[RATING_MEAN if response == "rating" else "combined"])
    rated = y_all.notna().to_numpy()
    if rated.sum() < 3:  # ta: 3 samples; t1: 1 unit-space + 2 signal conditions
        raise NoDataError(
            f"`response`: the T-method needs at least 3 rated conditions; {study.name!r} has {int(rated.sum())}"
        )
    items = condition_items(study, conditions, scorer)
    items = items.loc[:, items[rated].std(ddof=0) > 0]  # constant items say nothing
    model, gains, selected, all_sn, mask = _fit_and_select(
        items.to_numpy(), y_all[rated].to_numpy(float), rated, variant, list(items.columns)
    )
    predicted = model.predict(items[selected].to_numpy())
    predictions = conditions[["condition", *study.spec.space.names]].assign(
        observed=y_all.to_numpy(float), predicted=predicted, rated=rated
    )
    unit = list(conditions["condition"][rated][mask]) if mask is not None else list(conditions["condition"][rated])
    result = RatingPrediction(
        study.name,
        response,
        variant,
        items,
        gains,
        selected,
        model.overall_sn_db_,
        all_sn,
        predictions,
        [int(c) for c in unit],
    )
    if log:
        log_prediction(study.tracker(), result, dict(zip(conditions["condition"], conditions["run_id"])))
    return result


def _fit_and_select(X_all, y, rated, variant, names):
    from qeuopt.model import TMethodRegressor

    X = X_all[rated]
    mask = unit_space(y) if variant == "t1" else None
    model = TMethodRegressor(variant=variant).fit(X, y, unit_mask=mask)
    gains = pd.Series(model.item_gains(X, y, unit_mask=mask), index=names).sort_values(ascending=False)
    selected = [n for n in names if gains[n] > 0] or list(names)
    all_sn = model.overall_sn_db_
    if len(selected) < len(names):
        columns = [names.index(n) for n in selected]
        model = TMethodRegressor(variant=variant).fit(X[:, columns], y, unit_mask=mask)
    return model, gains, selected, all_sn, mask


def log_prediction(tracker, result: RatingPrediction, run_ids) -> None:
    """Tables and the report on the parent run; each condition's prediction as a metric
    ``tmethod_<response>`` on its own run, so the MLflow run list can sort by it."""
    from qeuopt.analysis.report import plain_levels

    parent = tracker.find_study_run(result.study)
    folder = f"analysis/tmethod_{result.response}"
    if parent is not None:
        tracker.log_table(parent, result.items.reset_index(), f"{folder}/items.json")
        tracker.log_table(
            parent, result.gains.rename_axis("item").reset_index(name="gain_db"), f"{folder}/item_gains.json"
        )
        tracker.log_table(parent, plain_levels(result.predictions), f"{folder}/predictions.json")
        tracker.log_text(parent, result.report(), f"{folder}/report.txt")
    for condition, value in zip(result.predictions["condition"], result.predictions["predicted"]):
        tracker.log(run_ids[condition], metrics={f"tmethod_{result.response}": float(value)})
