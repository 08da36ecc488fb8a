"""Lanes: one worker runs its trial loop on several threads, so the GPU never waits.

Rendering a grid is the GPU's part of a condition; scoring it, creating its MLflow run,
dumping its pixels and Optuna's commits (claim, heartbeat, parameters, attributes,
result) are the CPU's, and with one thread the GPU idles through all of them. A worker
therefore drains its queue in two lanes that share one generator behind a lock
(:class:`~qeuopt.run.condition.ConditionRunner` holds it): while one lane records
condition k, the other renders k+1.

Each lane claims its trials exactly as a separate worker would (one storage transaction,
a heartbeat), so "every row runs once" stays the queue's guarantee and needs nothing
new; a lane holds one condition at a time, so memory stays flat. Lane 0 runs on the
calling thread, so Ctrl-C interrupts its condition as before (the trial fails and is
queued again); the other lanes are stopped before their next claim and finish the one
they hold. A lane's error stops the others the same way, then surfaces here. An adaptive
study's sampler sees each result one condition later than with one lane, as it would
with two workers. A generator computing on the CPU gets one lane (:func:`lanes_for`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from qeuopt.run.loop import TrialLoop
from qeuopt.run.queue import QueueState

LANES = 2  # one renders while the other records; more only queue on the generator's lock


def lanes_for(generator, overlap: bool) -> int:
    """Two lanes when the generator renders on an accelerator. One when its ``device`` is
    the CPU, where the recording lane only competes with the model for the same cores
    (measured on the tiny model: about 6% more CPU for the process and no shorter wall),
    or when ``tracking.overlap_logging`` is off."""
    return LANES if overlap and str(getattr(generator, "device", "")) != "cpu" else 1


def drain_in_lanes(loops: Sequence[TrialLoop], work: Callable[[dict, Any], Any], wait_s: float | None) -> QueueState:
    """Drain the queue with one lane per loop (the loops share one study); the queue as
    it stands once every lane has stopped."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def lane(loop: TrialLoop) -> None:
        try:
            loop.drain(work, wait_s, stop.is_set)
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread below
            errors.append(err)
            stop.set()

    # daemon threads: a second Ctrl-C (or an exit) does not wait for their grids; a trial
    # one of them held is then failed by the next resume, as a killed worker's is
    others = [
        threading.Thread(target=lane, args=(loop,), name=f"qeuopt-lane-{k}", daemon=True)
        for k, loop in enumerate(loops[1:], start=1)
    ]
    for thread in others:
        thread.start()
    try:
        loops[0].drain(work, wait_s, stop.is_set)
    finally:
        stop.set()
        for thread in others:
            thread.join()
    if errors:
        raise errors[0]
    return loops[0].peek()
