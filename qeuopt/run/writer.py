"""The second half of a condition, off the lanes: PNGs, grid, artifacts.

While the GPU renders condition k+1, condition k's PNGs are encoded (on a few encoder
threads: zlib releases the GIL), its folder renamed into place and its artifacts logged
on one writer thread. At most ``depth`` conditions wait, so memory stays flat however
long the study is: a lane that submits to a full queue blocks.

Durability: before a condition is handed over, its decoded pixels and everything needed
to write its files are dumped raw into ``cNNN.pending/`` (a few milliseconds: no
compression) and its MLflow run holds params, metrics and the folder tag. A process
killed while files are being written leaves the dump and a RUNNING run; resuming
finishes both (:func:`finish_pending`). The dump is removed once the folder is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qeuopt.config.spec import TrackingSettings
from qeuopt.generate.files import GRID_FILE
from qeuopt.generate.grid import labelled_grid, save_png

PIXELS, JOB = "pixels.npy", "job.json"


@dataclass(frozen=True)
class FilesJob:
    """What writing one condition's folder needs, as plain data (it round-trips JSON)."""

    folder: str  # the final folder, ``outputs/<study>/cNNN``
    names: list[str]  # one PNG name per image, grid order
    parameters: list[str]  # A1111 ``parameters`` text per image
    grid: list[int]  # rows, cols
    header: list[str]
    captions: list[str]
    png_compression: int = TrackingSettings.png_compression  # zlib level (a dump from before it: the default)


def pending_folder(folder: Path) -> Path:
    return folder.with_name(folder.name + ".pending")


def as_pixels(images) -> np.ndarray:
    """PIL images (or one array already) as one uint8 array ``(n, height, width, 3)``."""
    if isinstance(images, np.ndarray):
        return images
    return np.stack([np.asarray(image.convert("RGB")) for image in images])


def as_images(images) -> list:
    """PIL images, from a uint8 array ``(n, height, width, 3)`` or as given."""
    if not isinstance(images, np.ndarray):
        return list(images)
    from PIL import Image

    return [Image.fromarray(p) for p in images]


def dump_pending(job: FilesJob, pixels: np.ndarray) -> Path:
    """The raw pixels and the job, beside the folder-to-be; renamed into place, so a
    pending folder is either whole or absent."""
    target = pending_folder(Path(job.folder))
    temp = target.with_name(target.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    np.save(temp / PIXELS, pixels, allow_pickle=False)
    (temp / JOB).write_text(json.dumps(asdict(job)))
    shutil.rmtree(target, ignore_errors=True)
    temp.rename(target)
    return target


def load_pending(folder: Path) -> tuple[FilesJob, np.ndarray] | None:
    pending = pending_folder(folder)
    if not (pending / JOB).is_file():
        return None
    job = FilesJob(**json.loads((pending / JOB).read_text()))
    return job, np.load(pending / PIXELS, allow_pickle=False)


def write_files(job: FilesJob, pixels: np.ndarray, encoders: ThreadPoolExecutor | None = None) -> Path:
    """PNGs and the labelled grid into ``cNNN.partial``, renamed to ``cNNN`` when whole;
    then the pending dump, if any, is removed."""
    from PIL import Image

    final = Path(job.folder)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        images = [Image.fromarray(p) for p in pixels]
        grid = labelled_grid(images, *job.grid, job.header, job.captions)
        # the grid first: it is the largest (as large as all images together), and started
        # last it would finish alone after the others
        work = [(grid, partial / GRID_FILE, job.parameters[0] if job.parameters else None)]  # A1111 grids carry it
        work += [(image, partial / name, text) for image, name, text in zip(images, job.names, job.parameters)]
        run = encoders.map if encoders is not None else map
        list(run(lambda item: save_png(*item, level=job.png_compression), work))
        shutil.rmtree(final, ignore_errors=True)  # left by an earlier attempt of this number
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(pending_folder(final), ignore_errors=True)
    return final


def finish_pending(folder: Path) -> bool:
    """Write the folder from its pending dump when the folder is missing; True if done."""
    if folder.is_dir():
        return True
    found = load_pending(folder)
    if found is None:
        return False
    write_files(*found)
    return True


class Writer:
    """One writer thread with a bounded queue, plus encoder threads for PNGs."""

    def __init__(self, depth: int = 2, encoders: int | None = None):
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="qeuopt-write")
        self.encoders = ThreadPoolExecutor(encoders or min(4, os.cpu_count() or 1), thread_name_prefix="qeuopt-png")
        self._slots = threading.BoundedSemaphore(depth)
        self._futures: list = []
        self._futures_lock = threading.Lock()  # a worker's lanes submit and check side by side

    def submit(self, work: Callable[[], None]) -> float:
        """Queue ``work``; the seconds the caller waited for a free slot."""
        start = time.perf_counter()
        self._slots.acquire()  # back-pressure: a full queue holds the submitting lane here
        waited = time.perf_counter() - start

        def job():
            try:
                work()
            finally:
                self._slots.release()

        with self._futures_lock:
            self._futures.append(self._thread.submit(job))
        return waited

    def raise_errors(self) -> None:
        """Re-raise, in the calling thread, the first failure of a finished job."""
        with self._futures_lock:
            finished = [f for f in self._futures if f.done()]
            self._futures = [f for f in self._futures if f not in finished]
        for future in finished:
            future.result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.encoders.shutdown(wait=True)
        self.raise_errors()
