"""The conditions and image files a rating server may show, read from the study's MLflow runs.

Requests name images by (condition number, image index) only; the file paths come from
here, so nothing a browser sends ever reaches the file system.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_FILE = re.compile(r"^(\d+)_seed(-?\d+)\.png$")  # written by qeuopt.run.condition.ConditionRunner
REFRESH_S = 3.0  # new conditions (a steered search) appear within this many seconds


@dataclass(frozen=True)
class Entry:
    """One finished condition: its trial number, MLflow run, factor levels and files."""

    number: int
    run_id: str
    values: dict[str, str]
    prompt: str
    images: tuple[Path, ...]
    seeds: tuple[int, ...]
    grid: Path

    def public(self) -> dict[str, Any]:
        return {"number": self.number, "values": self.values, "prompt": self.prompt,
                "images": len(self.images), "seeds": list(self.seeds)}


def entry_from_run(run, folder: Path | None = None) -> Entry | None:
    """An entry from one row of ``Tracker.condition_runs`` with its files in ``folder``
    (default: the folder the run was written to); None when the files are not there."""
    folder = folder or Path(str(run.get("tags.qeuopt.folder") or ""))
    if run.get("status") != "FINISHED" or not folder.is_absolute() or not folder.is_dir():
        return None
    found = sorted((int(m[1]), int(m[2]), path) for path in folder.iterdir() if (m := IMAGE_FILE.match(path.name)))
    if not found:
        return None
    values = {k[len("params.factor."):]: str(v) for k, v in run.items()
              if k.startswith("params.factor.") and isinstance(v, str)}
    return Entry(int(run["tags.optuna.trial_number"]), run["run_id"], values, str(run.get("params.prompt", "")),
                 tuple(p for _, _, p in found), tuple(s for _, s, _ in found), folder / "grid.png")


class Catalog:
    """The study's finished conditions, re-read from MLflow at most every ``REFRESH_S``."""

    def __init__(self, study, refresh_s: float = REFRESH_S):
        self.study, self.refresh_s = study, refresh_s
        self._lock = threading.Lock()
        self._entries: dict[int, Entry] = {}
        self._read_at = float("-inf")
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._read_at < self.refresh_s:
                return
            runs = self.study.runs()
            rows = [row for _, row in runs.iterrows()] if len(runs) else []
            entries = (entry_from_run(row) or self._downloaded(row) for row in rows)
            self._entries = {e.number: e for e in entries if e is not None}
            self._read_at = time.monotonic()

    def _downloaded(self, run) -> Entry | None:
        """A condition written on another machine: its PNGs and grid come from MLflow (the
        tracking server's artifact store) into ``outputs/<study>/from-mlflow/cNNN`` once."""
        if run.get("status") != "FINISHED":
            return None
        spec = self.study.spec
        folder = (Path(spec.tracking.output_dir) / spec.name / "from-mlflow" /
                  f"c{int(run['tags.optuna.trial_number']):03d}").resolve()
        if not (folder / "grid.png").is_file():
            tracker, partial = self.study.tracker(), folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted download
            for artifact in ("png", "grid.png"):
                tracker.download(run["run_id"], artifact, partial)
            for path in (partial / "png").iterdir():
                path.rename(partial / path.name)
            partial.rename(folder)
        return entry_from_run(run, folder)

    def entries(self) -> list[Entry]:
        self.refresh()
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, number: int) -> Entry | None:
        if number not in self._entries:
            self.refresh()
        return self._entries.get(number)

    def known(self) -> dict[int, int]:
        """Condition number -> number of images: what a rating may point at."""
        self.refresh()
        return {n: len(e.images) for n, e in self._entries.items()}

    def run_ids(self) -> dict[int, str]:
        return {n: e.run_id for n, e in self._entries.items()}
