"""Copying ratings from the rating store to MLflow, in a background thread.

:func:`sync_outbox` does the copying (``qeuopt ratings import`` and the steering loop
call it too). The HTTP request that stores a rating only commits it to SQLite
(milliseconds) and wakes an :class:`OutboxSync`; MLflow, which is slower, is written there.
What is not written yet stays in the store's outbox, so it is written after a crash too:
:meth:`OutboxSync.start` drains the outbox before anything else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)
RETRY_S = 2.0  # after MLflow failed (locked database, disk full), try again this much later


def summarize_condition(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What MLflow shows for one condition: per-image means, overall mean and count, raters."""
    rated = [r for r in rows if r["rating"] is not None]
    per_image: dict[int, list[int]] = {}
    for r in rated:
        per_image.setdefault(r["image"], []).append(r["rating"])
    mean = sum(r["rating"] for r in rated) / len(rated) if rated else float("nan")
    return {
        "per_image": {k: sum(v) / len(v) for k, v in sorted(per_image.items())},
        "mean": mean,
        "count": len(rated),
        "skips": len(rows) - len(rated),
        "raters": sorted({r["rater"] for r in rows}),
    }


def sync_outbox(store, tracker, study: str, run_ids: Mapping[int, str]) -> int:
    """Copy every out-of-date condition to its MLflow run; returns how many were written.

    A condition whose run is not known yet stays in the outbox for a later call."""
    written = 0
    for condition, revision in store.outbox(study):
        run_id = run_ids.get(condition)
        if run_id is None:
            continue
        rows = store.rows(study, condition=condition)
        tracker.log_ratings(run_id, summarize_condition(rows), rows, step=revision)
        store.mark_synced(study, condition, revision)
        written += 1
    return written


class OutboxSync:
    """A background thread that runs ``drain()`` whenever :meth:`notify` is called (and
    every :data:`RETRY_S`), until ``pending()`` says the outbox is empty. MLflow trouble
    is logged and retried: the outbox keeps the work, so rating never stops for it."""

    def __init__(self, drain: Callable[[], Any], pending: Callable[[], int], tracker, name: str):
        self.drain, self._pending, self.tracker, self.name = drain, pending, tracker, name
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=f"qeuopt-{name}-sync", daemon=True)

    def start(self) -> OutboxSync:
        self._thread.start()
        self.notify()  # first what an earlier, killed server left in the outbox
        return self

    def notify(self) -> None:
        self._wake.set()

    def pending(self) -> int:
        """How many outbox rows wait for MLflow."""
        return self._pending()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything stored is in MLflow; False if that took longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            self.notify()
            with self._idle:
                self._idle.wait(0.2)  # a pass that ended just before this wait is caught by the timeout
        return self.pending() == 0

    def stop(self, timeout: float = 30.0) -> None:
        if not self._thread.is_alive():
            return
        self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(RETRY_S)
            self._wake.clear()
            try:
                self.drain()
            except Exception:
                log.exception("copying %s to MLflow failed; retrying in %.0f s", self.name, RETRY_S)
                time.sleep(RETRY_S)
            with self._idle:
                self._idle.notify_all()


def rating_sync(store, tracker, study: str, catalog) -> OutboxSync:
    """The sync of one study's ratings: each out-of-date condition to its run."""
    return OutboxSync(
        lambda: sync_outbox(store, tracker, study, catalog.run_ids()),
        lambda: len(store.outbox(study)),
        tracker,
        "ratings",
    )
