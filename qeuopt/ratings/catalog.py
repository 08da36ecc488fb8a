"""The conditions and image files a rating server may show, read from the study's MLflow runs.

Requests name images by (condition number, image index) only; the file paths come from
here, so nothing a browser sends ever reaches the file system.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeuopt.generate.files import GRID_FILE, parse_image_name
from qeuopt.track.schema import FACTOR_PREFIX, FOLDER_TAG, TRIAL_TAG, column

REFRESH_S = 3.0  # new conditions (a steered search) appear within this many seconds

log = logging.getLogger(__name__)


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
        return {
            "number": self.number,
            "values": self.values,
            "prompt": self.prompt,
            "images": len(self.images),
            "seeds": list(self.seeds),
        }


def entry_from_run(run, folder: Path | None = None) -> Entry | None:
    """An entry from one row of ``Tracker.condition_runs`` with its files in ``folder``
    (default: the folder the run was written to); None when the files are not there."""
    folder = folder or Path(str(run.get(column("tags", FOLDER_TAG)) or ""))
    if run.get("status") != "FINISHED" or not folder.is_absolute() or not folder.is_dir():
        return None
    found = sorted((*parsed, path) for path in folder.iterdir() if (parsed := parse_image_name(path.name)))
    if not found:
        return None
    prefix = column("params", FACTOR_PREFIX)
    values = {k[len(prefix) :]: str(v) for k, v in run.items() if k.startswith(prefix) and isinstance(v, str)}
    return Entry(
        int(run[column("tags", TRIAL_TAG)]),
        run["run_id"],
        values,
        str(run.get("params.prompt", "")),
        tuple(p for _, _, p in found),
        tuple(s for _, s, _ in found),
        folder / GRID_FILE,
    )


class Catalog:
    """The study's finished conditions. Read once when made; :meth:`start` keeps it fresh
    from a background thread every ``refresh_s``, so no request ever waits on MLflow.

    Readers get the last complete snapshot (a dict swapped in whole). A refresh re-lists
    the runs but reuses the entries it already has: only new runs touch the disk."""

    def __init__(self, study, refresh_s: float = REFRESH_S):
        self.study, self.refresh_s = study, refresh_s
        self._entries: dict[int, Entry] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    def refresh(self) -> None:
        runs = self.study.runs()
        if not len(runs):
            return
        known = {e.run_id: e for e in self._entries.values()}
        entries = {}
        for _, row in runs.iterrows():
            entry = known.get(row["run_id"]) or entry_from_run(row) or self._downloaded(row)
            if entry is not None:
                entries[entry.number] = entry
        self._entries = entries  # one assignment: readers see the old or the new, whole

    def start(self) -> Catalog:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="qeuopt-catalog", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception:  # MLflow busy or briefly locked: keep the snapshot, try again
                log.warning("rating catalog refresh failed; keeping the last list", exc_info=True)

    def _downloaded(self, run) -> Entry | None:
        """A condition written on another machine: its PNGs and grid come from MLflow (the
        tracking server's artifact store) into ``outputs/<study>/from-mlflow/cNNN`` once."""
        if run.get("status") != "FINISHED":
            return None
        spec = self.study.spec
        folder = (
            Path(spec.tracking.output_dir) / spec.name / "from-mlflow" / f"c{int(run[column('tags', TRIAL_TAG)]):03d}"
        ).resolve()
        if not (folder / GRID_FILE).is_file():
            tracker, partial = self.study.tracker(), folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted download
            for artifact in ("png", GRID_FILE):
                tracker.download(run["run_id"], artifact, partial)
            for path in (partial / "png").iterdir():
                path.rename(partial / path.name)
            partial.rename(folder)
        return entry_from_run(run, folder)

    def entries(self) -> list[Entry]:
        entries = self._entries
        return [entries[n] for n in sorted(entries)]

    def get(self, number: int) -> Entry | None:
        return self._entries.get(number)

    def known(self) -> dict[int, int]:
        """Condition number -> number of images: what a rating may point at."""
        return {n: len(e.images) for n, e in self._entries.items()}

    def run_ids(self) -> dict[int, str]:
        return {n: e.run_id for n, e in self._entries.items()}
