"""Where a worker's time goes, per stage of a condition, summed over its lanes."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Timings:
    """Seconds spent per stage, summed over the conditions run (thread-safe).

    Summed over a worker's lanes, which run side by side: ``turn`` is a lane waiting while
    the other renders; ``write`` (PNGs, grid, artifacts) runs on the writer thread; ``wait``
    is a lane blocked on a full writer queue; ``warmup`` is a compiled model's first grid."""

    generate: float = 0.0
    turn: float = 0.0
    score: float = 0.0
    log: float = 0.0
    other: float = 0.0
    write: float = 0.0
    wait: float = 0.0
    warmup: float = 0.0
    conditions: int = 0
    images: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()

    def busy(self) -> float:
        """Seconds the pipeline was rendering (compile warm-up included)."""
        return self.generate + self.warmup

    def add(self, stages: dict[str, float], images: int, conditions: int = 1) -> None:
        with self._lock:
            for name, seconds in stages.items():
                setattr(self, name, getattr(self, name) + seconds)
            self.conditions += conditions
            self.images += images


@contextmanager
def timed(stages: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
