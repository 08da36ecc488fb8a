"""The conditions and image files a rating server may show, read from the study's MLflow runs.

Requests name images by (condition number, image index) only; the file paths come from
here, so nothing a browser sends ever reaches the file system.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeuopt.generate.files import GRID_FILE, parse_image_name
from qeuopt.track.schema import FACTOR_PREFIX, FOLDER_TAG, TRIAL_TAG, column

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


def entry_from_run(run) -> Entry | None:
    """An entry from one row of ``Tracker.condition_runs``; None when its files are gone."""
    folder = Path(str(run.get(column("tags", FOLDER_TAG)) or ""))
    if run.get("status") != "FINISHED" or not folder.is_absolute() or not folder.is_dir():
        return None
    found = sorted((*parsed, path) for path in folder.iterdir() if (parsed := parse_image_name(path.name)))
    if not found:
        return None
    prefix = column("params", FACTOR_PREFIX)
    values = {k[len(prefix):]: str(v) for k, v in run.items() if k.startswith(prefix) and isinstance(v, str)}
    return Entry(int(run[column("tags", TRIAL_TAG)]), run["run_id"], values, str(run.get("params.prompt", "")),
                 tuple(p for _, _, p in found), tuple(s for _, s, _ in found), folder / GRID_FILE)


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
            entries = (entry_from_run(row) for _, row in runs.iterrows()) if len(runs) else ()
            self._entries = {e.number: e for e in entries if e is not None}
            self._read_at = time.monotonic()

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
