"""Python's cyclic garbage collector while a command sets up: imports and model loading.

Why: importing torch, diffusers, transformers and MLflow and loading a pipeline leaves a
few million long-lived objects, none of them garbage. CPython 3.11 runs a full collection
over all of them each time their number grows by a quarter, and more at interpreter exit.
Measured on the demo (tiny model, CPU, `qeuopt run --no-report`,
`benchmarks/collector.py --repeat 4`): with Python's defaults, 10 full collections took
3.4 s and the collections at exit 4.5 s of the process's 31.9 s of CPU; with the settings
below, one full collection (0.06 s), 0.4 s at exit, 25.0 s in all.

A command that owns its process (the ``qeuopt`` CLI; never a library call) raises the
collection thresholds while it sets up, then, once the models are loaded, moves everything
alive into the permanent generation (:func:`gc.freeze`), which later collections skip.
Young objects are still collected during set-up, so a worker that waits a long time for
rows before it loads anything keeps its memory bounded.
"""

from __future__ import annotations

import gc

# gen0 every 100k net allocations (default 700), gen2 only after 1000 gen1 collections:
# set-up allocates a few million objects, so no full collection runs during it.
SETUP_THRESHOLDS = (100_000, 50, 1000)

_saved: tuple[int, int, int] | None = None


def defer_collection() -> None:
    """Raise the thresholds until :func:`setup_done` (called by the process owner)."""
    global _saved
    if _saved is None:
        _saved = gc.get_threshold()
        gc.set_threshold(*SETUP_THRESHOLDS)


def setup_done() -> None:
    """Models are loaded: freeze what is alive and restore the thresholds. Does nothing
    unless the process deferred collection, so a library user's collector is untouched."""
    global _saved
    if _saved is not None:
        gc.freeze()
        gc.set_threshold(*_saved)
        _saved = None


def freeze_before_exit() -> None:
    """The interpreter's last collections then skip the frozen heap. What is lost: the
    finalizers of objects in reference cycles do not run at exit, which Python never
    guaranteed anyway; qeuopt closes its files and databases before this."""
    gc.freeze()
