"""A study that already ran must not change under its name.

When a study's Optuna study is first opened, what defines its conditions (factors and
levels, design, prompt, the generation settings that change images, scoring) is stored
as a user attribute. Later opens compare the study file with it: a change is reported
with what changed and the two ways out (a new study name, or ``qeuopt run --fresh``),
instead of a crash inside Optuna or a study whose conditions mix two settings.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qeuopt.config.checks import sqlite_file
from qeuopt.errors import StudyError

ATTR = "qeuopt.fingerprint"
# Settings that change speed or memory, not images: editing them is fine.
RUNTIME_ONLY = (
    "device",
    "dtype",
    "compile",
    "channels_last",
    "attention_slicing",
    "vae_slicing",
    "vae_tiling",
    "allow_pickle",
)


def fingerprint(spec) -> dict[str, Any]:
    """What defines a study's conditions, as plain JSON data (1, 1.0 and True stay apart)."""
    generation = {
        k: v for k, v in asdict(spec.generation).items() if k not in RUNTIME_ONLY and k not in spec.space.names
    }
    data = {
        "factors": {f.name: list(f.levels) for f in spec.space.factors},
        "design": {"kind": spec.design.kind, "objective": spec.design.objective},
        "prompt": asdict(spec.prompt),
        "generation": generation,
        "scoring": asdict(spec.scoring),
    }
    return json.loads(json.dumps(data))


def check_unchanged(optuna_study, spec) -> None:
    """Raise a StudyError if ``spec`` differs from the study that already ran under its name;
    store the fingerprint the first time."""
    current = fingerprint(spec)
    stored = optuna_study.user_attrs.get(ATTR)
    if stored == current:
        return
    changes = _diff(stored, current) if stored is not None else _changes_from_trials(optuna_study, spec)
    if not changes:
        optuna_study.set_user_attr(ATTR, current)
        return
    raise StudyError(
        changes
        + [
            f"study {spec.name!r} already ran with the earlier settings, and mixing the two would make its "
            f"results meaningless; to keep them, give the changed study a new `name`; to start over, run "
            f"`qeuopt run --fresh` (it deletes the study's trials, condition folders and runs, and saves its "
            f"ratings to a CSV first)"
        ],
        spec.name,
    )


def _diff(stored: dict, current: dict) -> list[str]:
    changes = []
    for section in sorted(set(stored) | set(current)):
        old, new = stored.get(section, {}), current.get(section, {})
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                changes.append(f"`{section}.{key}`: removed; it was {old[key]!r}")
            elif key not in old:
                changes.append(f"`{section}.{key}`: added; now {new[key]!r}")
            elif old[key] != new[key]:
                changes.append(f"`{section}.{key}`: was {old[key]!r} when the study first ran; now {new[key]!r}")
    return changes


def _changes_from_trials(optuna_study, spec) -> list[str]:
    """A study created before fingerprints existed: compare its trials' parameters."""
    levels, seen, changes = {f.name: list(f.levels) for f in spec.space.factors}, set(), []
    for trial in optuna_study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            if name in seen:
                continue
            seen.add(name)
            choices = list(getattr(distribution, "choices", ()))
            if name not in levels:
                changes.append(f"`factors.{name}`: removed; it had levels {choices!r}")
            elif json.dumps(choices) != json.dumps(levels[name]):
                changes.append(
                    f"`factors.{name}`: levels were {choices!r} when the study first ran; now {levels[name]!r}"
                )
    if seen:
        changes += [f"`factors.{name}`: added; now {levels[name]!r}" for name in levels if name not in seen]
    return changes


def start_over(study) -> str:
    """Delete what a study left (trials, condition folders, MLflow runs), after saving its
    ratings and pairwise choices to CSV files in the working folder; returns what was done, in one line."""
    spec, done = study.spec, []
    for kind, path in _save_and_forget_judgements(spec).items():
        done.append(f"{kind} saved to {path} and removed")
    if _store_exists(spec.tracking.mlflow_uri):
        done.append(f"{study.tracker().delete_study_runs(spec.name)} MLflow run(s) deleted")
    if _store_exists(spec.tracking.optuna_storage) and _delete_optuna_study(study):
        done.append("Optuna trials deleted")
    folder = Path(spec.tracking.output_dir) / spec.name
    if folder.is_dir():
        shutil.rmtree(folder)
        done.append(f"{folder} removed")
    return f"{spec.name}: starting over: " + ("; ".join(done) if done else "nothing to delete")


def _store_exists(uri: str) -> bool:
    path = sqlite_file(uri)
    return path is None or Path(path).is_file()  # a server store: ask it


def _delete_optuna_study(study) -> bool:
    import optuna

    from qeuopt.config.spec import absolute_sqlite_url

    try:
        optuna.delete_study(study_name=study.name, storage=absolute_sqlite_url(study.spec.tracking.optuna_storage))
    except KeyError:  # never created
        return False
    return True


def _save_and_forget_judgements(spec) -> dict[str, Path]:
    """Ratings and pairwise choices name conditions by number, and a study started over
    numbers new conditions the same: so they are written to CSV files and removed."""
    from qeuopt.ratings.csvfile import write_choices_csv, write_ratings_csv
    from qeuopt.ratings.database import ratings_exist
    from qeuopt.ratings.preferences import preference_store_for

    if not ratings_exist(spec):
        return {}
    saved, stamp = {}, time.strftime("%Y%m%d-%H%M%S")
    with preference_store_for(spec) as store:
        for kind, rows, write in (
            ("ratings", store.rows(spec.name), write_ratings_csv),
            ("choices", store.choices(spec.name), write_choices_csv),
        ):
            if rows:
                saved[kind] = Path(f"{spec.name}-{kind}-{stamp}.csv")
                with open(saved[kind], "w", newline="", encoding="utf-8") as out:
                    write(rows, out)
        store.forget_study(spec.name)
    return saved
