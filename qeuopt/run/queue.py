"""One Optuna study carries every design.

Orthogonal-array and full-factorial rows are enqueued as fixed trials; adaptive search
uses a sampler. Every condition is therefore a trial with a number, and several workers
on several machines share one RDB storage (SQLite on one machine, PostgreSQL across
machines). Creating the tables, the study and the queue happens under a database lock;
:mod:`qeuopt.run.loop` claims, runs and re-queues trials.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from qeuopt.config.spec import StudySpec
from qeuopt.design.assign import assign
from qeuopt.errors import InputError, StoreError
from qeuopt.levels import grid_rows, level_key
from qeuopt.run.workers import STEERED, owner
from qeuopt.track.schema import CLIP_MEAN

HEARTBEAT_S, GRACE_BEATS = 20, 3


def design_rows(spec: StudySpec) -> list[dict[str, Any]] | None:
    """The conditions a fixed design asks for, in run order; None for adaptive search."""
    levels = spec.space.levels()
    if spec.design.kind == "optuna":
        return None
    if spec.design.kind == "full":
        return list(grid_rows(levels))
    assignment = assign({name: len(values) for name, values in levels.items()}, spec.design.kind)
    return assignment.rows(levels)


def array_name(spec: StudySpec) -> str:
    """The array actually used (``auto`` resolved), or the design kind."""
    if spec.design.kind in ("optuna", "full"):
        return spec.design.kind
    return assign({f.name: len(f.levels) for f in spec.space.factors}, spec.design.kind).array


def name_objective(study, spec) -> None:
    """The trial value's name in Optuna and optuna-dashboard (else "Objective 0")."""
    import optuna

    objective = spec.design.objective
    name = CLIP_MEAN if objective == "clip" else objective
    if study.metric_names != [name]:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([name])


def parent_params(spec: StudySpec, rows) -> dict[str, Any]:
    """The study's parent run in MLflow: what was run, on which array, with which model."""
    gen = spec.generation
    return {
        "design": spec.design.kind,
        "array": array_name(spec),
        "conditions": len(rows) if rows else spec.design.trials,
        "model": gen.model,
        "mode": gen.mode,
        "grid": f"{gen.grid[0]}x{gen.grid[1]}",
        "template": spec.prompt.template,
        "negative_prompt": spec.prompt.negative,
        "factors": ", ".join(spec.space.names),
    }


def make_sampler(name: str, seed: int | None = 0):
    import optuna

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }
    return samplers[name]()


def heartbeat_seconds() -> tuple[int, int]:
    """Heartbeat interval and grace period: a worker silent for the grace period is dead.
    ``QEUOPT_HEARTBEAT_S`` sets the interval (the grace is three of them)."""
    raw = os.environ.get("QEUOPT_HEARTBEAT_S", "")
    if raw and not (raw.isdigit() and int(raw) >= 1):
        raise InputError(f"`QEUOPT_HEARTBEAT_S`: a whole number of seconds >= 1 is needed; given {raw!r}")
    interval = int(raw) if raw else HEARTBEAT_S
    return interval, interval * GRACE_BEATS


def open_study(name: str, storage_url: str, sampler: str = "tpe", seed: int | None = 0, create: bool = True):
    """The Optuna study of a qeuopt study, with heartbeats on.

    ``create``: make the tables and the study if missing, under the database's lock (two
    first starts race on table creation otherwise, optuna/optuna#1092). A worker passes
    False: the study must exist already (``qeuopt init``)."""
    import optuna

    from qeuopt.track.store import database_lock, masked, store_errors

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    interval, grace = heartbeat_seconds()
    with store_errors(storage_url, "opening the Optuna storage"):
        if not create and not _has_tables(storage_url):
            raise StoreError(
                f"{masked(storage_url)}: no study named {name!r} (no Optuna tables); run "
                "`qeuopt init STUDY` once (or `qeuopt run`) before starting workers"
            )
        with database_lock(storage_url, f"qeuopt.optuna.{name}") if create else nullcontext():
            # optuna.db stays in SQLite's rollback-journal mode: in WAL mode a reader may see
            # a snapshot older than another worker's committed queue, and two workers started
            # together each ran every row (measured; tests/test_perf.py says why)
            with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    storage_url, heartbeat_interval=interval, grace_period=grace, skip_table_creation=not create
                )
            if create:
                return optuna.create_study(
                    study_name=name,
                    storage=storage,
                    sampler=make_sampler(sampler, seed),
                    direction="maximize",
                    load_if_exists=True,
                )
            try:
                return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(sampler, seed))
            except KeyError:
                raise StoreError(
                    f"{masked(storage_url)}: no study named {name!r}; run `qeuopt init STUDY` "
                    "once (or `qeuopt run`) before starting workers"
                ) from None


def _has_tables(storage_url: str) -> bool:
    import sqlalchemy

    from qeuopt.track.store import open_engine

    engine = open_engine(storage_url)
    try:
        return sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()


def _key(params: Mapping[str, Any], names: Sequence[str]) -> tuple:
    return tuple(level_key(params.get(n)) for n in names)


def missing_rows(trials, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a design that no COMPLETE, RUNNING or WAITING trial stands for.

    A multiset: dummy levels can make two rows of an array identical, and both must run."""
    from optuna.trial import TrialState

    names = list(rows[0]) if rows else []
    taken = Counter()
    for trial in trials:
        if trial.state in (TrialState.COMPLETE, TrialState.RUNNING):
            taken[_key(trial.system_attrs.get("fixed_params") or trial.params, names)] += 1
        elif trial.state == TrialState.WAITING:
            taken[_key(trial.system_attrs.get("fixed_params", {}), names)] += 1
    todo = []
    for row in rows:
        key = _key(row, names)
        if taken[key] > 0:
            taken[key] -= 1
        else:
            todo.append(row)
    return todo


def suggest(trial, levels: Mapping[str, Sequence]) -> dict[str, Any]:
    """The condition of a trial: fixed params for enqueued rows, sampled otherwise."""
    return {name: trial.suggest_categorical(name, list(values)) for name, values in levels.items()}


def open_trials(study) -> list:
    """Trials some worker runs or will run (RUNNING or WAITING): while any is left, the
    study is not finished, whichever worker stops first."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))


@dataclass(frozen=True)
class Held:
    """A row another worker is running."""

    number: int
    host: str
    pid: int | None
    seconds: float

    def __str__(self) -> str:
        return f"c{self.number:03d} (worker {self.host} pid {self.pid}, running for {self.seconds:.0f} s)"


@dataclass(frozen=True)
class QueueState:
    """The queue as a worker sees it: trials to claim, trials other workers hold."""

    open: int
    held: tuple[Held, ...]


def queue_state(trials, budget: int | None = None) -> QueueState:
    """The queue in ``trials``: WAITING ones, plus the budget not yet used when a sampler
    proposes (``budget``), and the RUNNING ones workers hold (rating-steered trials wait
    for people, not for a worker)."""
    from optuna.trial import TrialState

    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    open_ = counts[TrialState.WAITING]
    if budget is not None:
        used = counts[TrialState.COMPLETE] + counts[TrialState.RUNNING] + counts[TrialState.WAITING]
        open_ += max(0, budget - used)
    now = time.time()
    held = tuple(
        Held(
            t.number,
            owner(t).get("host", "?"),
            owner(t).get("pid"),
            now - t.datetime_start.timestamp() if t.datetime_start else math.nan,
        )
        for t in trials
        if t.state == TrialState.RUNNING and not t.user_attrs.get(STEERED)
    )
    return QueueState(open_, held)
