"""Shared set-up of the rating tests (no tests here): studies made once, copied per test.

Creating an MLflow database costs seconds (its migrations), so a migrated empty one is
made once per session; a rated study's template (fake images, MLflow runs, Optuna trials)
is also made once, and each test works in its own copy of it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data

_MADE: dict[str, Path] = {}
L9_GRID = {"generation": {"grid": [3, 4], "width": 96, "height": 96}}  # 9 conditions x 12 images = 108


@contextmanager
def inside(folder: Path):
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def make_study(**changes):
    from qeuopt.run.study import Study

    data = study_data(**changes)
    return Study(data.pop("name"), data.pop("prompt"), data.pop("factors"), **data)


class SoftGenerator(FakeGenerator):
    """Smooth colour gradients instead of noise: the page's screenshot shows something."""

    @staticmethod
    def _image(prompt, settings, seed):
        digest = hashlib.sha256(f"{prompt}|{settings.guidance}|{seed}".encode()).digest()
        a, b = np.array(list(digest[:3]), float), np.array(list(digest[3:6]), float)
        y, x = np.mgrid[0 : settings.height, 0 : settings.width] / max(settings.width, settings.height)
        mix = (0.5 + 0.5 * np.sin(6 * x + 4 * y + digest[6] / 40))[..., None]
        return Image.fromarray((a * mix + b * (1 - mix)).astype(np.uint8))


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database: MLflow's runs in write-ahead-log mode, so
    the latest commits may still sit in ``-wal`` beside the file, which a file copy misses."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def empty_mlflow_db(base: Path) -> Path:
    """A migrated MLflow database with no experiment, made once per session."""
    if "empty" not in _MADE:
        from qeuopt.track.tracker import Tracker

        folder = base / "empty-mlflow"
        folder.mkdir()
        Tracker(f"sqlite:///{folder / 'mlflow.db'}", "scratch", folder / "mlartifacts")
        _MADE["empty"] = folder / "mlflow.db"
    return _MADE["empty"]


def fresh_folder(base: Path, workdir: Path) -> None:
    """Give ``workdir`` a migrated, empty MLflow database."""
    copy_database(empty_mlflow_db(base), workdir / "mlflow.db")


def rated_template(base: Path) -> Path:
    """A folder holding the finished L9 study of :data:`L9_GRID` (no ratings), made once."""
    if "l9" not in _MADE:
        folder = base / "template-l9"
        folder.mkdir()
        fresh_folder(base, folder)
        with inside(folder):
            make_study(**L9_GRID).run(SoftGenerator(), FakeScorer(), progress=False)
        _MADE["l9"] = folder
    return _MADE["l9"]


def study_copy(template: Path, workdir: Path, **changes):
    """The template's study in ``workdir`` (the current folder): its own databases, shared images."""
    for name in ("mlflow.db", "optuna.db"):
        copy_database(template / name, workdir / name)
    return make_study(**changes)
