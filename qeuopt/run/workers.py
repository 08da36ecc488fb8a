"""Who runs a trial: the worker's host, pid and process start time, recorded on the
trial when it is claimed, so that a rerun on the same host can tell at once that the
process holding a row is gone (a pid means something only on its own host; elsewhere the
heartbeat decides)."""

from __future__ import annotations

import os
import socket
from typing import Any

from qeuopt.track.schema import STEERED_TAG

WORKER = "qeuopt.worker"  # user attribute {host, pid, started}: who runs the trial (one write)
STEERED = STEERED_TAG  # rating-steered trials wait for people, without a heartbeat


def host_name() -> str:
    """This machine as trials record it: ``QEUOPT_HOST`` when set (containers that share
    a hostname must tell themselves apart: a pid means something only on its own host)."""
    return os.environ.get("QEUOPT_HOST") or socket.gethostname()


def this_worker() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": host_name(), "pid": pid, "started": _process_started(pid)}


def owner(trial) -> dict[str, Any]:
    """The worker a trial was claimed by: host, pid, process start time (empty if none)."""
    return trial.user_attrs.get(WORKER) or {}


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def dead_here(trial) -> bool:
    """The trial's worker ran on this host and its process is gone (the pid is free, or
    now belongs to a process started at another time)."""
    worker = owner(trial)
    if worker.get("host") != host_name() or worker.get("pid") is None or trial.user_attrs.get(STEERED):
        return False
    started = _process_started(int(worker["pid"]))
    return started is None or (worker.get("started") is not None and abs(started - worker["started"]) > 0.05)


def uploading_elsewhere(trial) -> bool:
    """Another live process on this host ran the trial and may still be uploading it."""
    worker = owner(trial)
    return worker.get("host") == host_name() and worker.get("pid") not in (None, os.getpid()) and not dead_here(trial)
