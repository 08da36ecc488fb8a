"""One Optuna study carries every design.

Orthogonal-array and full-factorial rows are enqueued as fixed trials; adaptive search
uses a sampler. Every condition is therefore a trial with a number, a rerun resumes by
enqueuing only what is not done, and several workers can share one RDB storage. Trials
send heartbeats, so a worker that was killed leaves a trial that is failed (and its row
run again) once its heartbeat is stale.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Mapping, Sequence

from qeuopt.config.spec import StudySpec
from qeuopt.design.assign import assign
from qeuopt.levels import grid_rows, level_key

HEARTBEAT_S, GRACE_S = 20, 60


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


def open_study(name: str, storage_url: str, sampler: str = "tpe", seed: int | None = 0):
    """Create or load the Optuna study of a qeuopt study (heartbeats on for RDB storage)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(storage_url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    return optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(sampler, seed),
                               direction="maximize", load_if_exists=True)


def _key(params: Mapping[str, Any], names: Sequence[str]) -> tuple:
    return tuple(level_key(params.get(n)) for n in names)


def pending_trials(study, rows: list[dict[str, Any]] | None, budget: int) -> int:
    """Enqueue what is not done yet; return how many trials this run should execute.

    A row counts as taken when a trial with its params is complete, waiting, or running
    with a fresh heartbeat. Stale running trials (a killed worker) are failed first.
    """
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    live = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING)]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    if rows is None:  # adaptive: waiting trials run first and count towards the budget
        return max(0, budget - len(live))
    names = list(rows[0]) if rows else []
    # a multiset: dummy levels can make two rows of an array identical, and both must run
    taken = Counter(_key(t.params, names) for t in live)
    taken.update(_key(t.system_attrs.get("fixed_params", {}), names) for t in waiting)
    todo = []
    for row in rows:
        key = _key(row, names)
        if taken[key] > 0:
            taken[key] -= 1
        else:
            todo.append(row)
    for row in todo:
        study.enqueue_trial(row)
    return len(todo) + len(waiting)


def suggest(trial, levels: Mapping[str, Sequence]) -> dict[str, Any]:
    """The condition of a trial: fixed params for enqueued rows, sampled otherwise."""
    return {name: trial.suggest_categorical(name, list(values)) for name, values in levels.items()}
