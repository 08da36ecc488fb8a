"""The one run loop: how every kind of study turns Optuna trials into conditions.

Designed studies, adaptive studies, ``oa`` rounds and rating-steered studies differ in
where a trial's setting comes from and when its value is told; the life of a trial is
the same for all of them and is written only here:

claim
    A WAITING trial is set RUNNING in one storage transaction, which two workers on two
    machines cannot both win. A fixed design (array, full factorial) never asks the
    sampler, so no worker can run a condition outside the design. Other studies ask the
    sampler under the study's lock, and only while fewer trials than the budget are
    complete, running or waiting, counted over every worker.
run
    Optuna's RDB heartbeat is recorded before the claim and every interval while the
    condition runs; the worker's host, pid and process start time go on the trial.
record
    The value is told: the trial is COMPLETE.
fail
    An error tells FAIL and calls the study's clean-up (its MLflow run, its files).
resume
    Under the study's lock: trials of dead workers are failed (a stale heartbeat, or at
    once when the worker ran on this host and its process is gone), and every row of a
    fixed design that no complete, running or waiting trial stands for is enqueued again.
    A worker that finds the queue empty while others hold rows resumes every few seconds,
    so the survivors run a dead worker's row in the same run.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from qeuopt.run.queue import QueueState, missing_rows, queue_state, suggest
from qeuopt.run.workers import WORKER, dead_here, host_name, owner, this_worker

POLL_S, SAY_EVERY_S = 2.0, 30.0


class TrialLoop:
    """Claims, runs, records, fails and resumes the trials of one Optuna study.

    ``rows``: the fixed design's conditions (None: the sampler proposes). ``budget``:
    trials over all workers (None: the caller counts). ``lock``: a callable giving the
    study's cross-process lock. ``on_fail(frozen_trial)``: the caller's clean-up.
    ``total``: say a line per condition run, out of this many (None: silent)."""

    def __init__(
        self,
        study,
        levels: Mapping[str, Sequence],
        rows: list[dict] | None = None,
        budget: int | None = None,
        lock: Callable = nullcontext,
        on_fail: Callable | None = None,
        say: Callable[[str], None] | None = None,
        total: int | None = None,
        suggest: Callable | None = None,
    ):
        self.study, self.levels, self.rows, self.budget = study, levels, rows, budget
        self.suggest = suggest  # trial, levels -> condition; default: categorical suggestions
        self.lock, self.on_fail, self.total = lock, on_fail, total
        self.say = say or (lambda text: print(f"qeuopt: {text}", file=sys.stderr, flush=True))
        self._done = itertools.count(1)  # conditions done by this worker, all lanes
        self._candidates: list[int] = []  # WAITING trial ids last read, tried in order
        # Optuna's own heartbeat helpers reach the storage the same way (study._storage)
        self.storage = study._storage
        self.interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        # Optuna's claim reads the trial's state, then writes RUNNING. PostgreSQL locks the
        # row in between (SELECT ... FOR UPDATE); SQLite ignores that, and its driver reads
        # outside the write's transaction, so two processes can both claim one row (seen
        # with the storage in WAL mode). On SQLite a claim therefore takes the study's lock.
        engine = getattr(getattr(self.storage, "_backend", self.storage), "engine", None)
        self._claim_lock = lock if engine is not None and engine.dialect.name == "sqlite" else nullcontext

    def lane(self) -> TrialLoop:
        """Another lane of this worker (:mod:`qeuopt.run.lanes`): the same study and
        clean-up, sharing the list of WAITING trials to try, so that the lanes take rows
        in turn instead of racing each other for the same one, and the count of
        conditions done."""
        return copy.copy(self)  # shallow: the list and the counter are the same objects

    # -- claim ---------------------------------------------------------------------------
    def claim(self, beat: bool = True):
        """The next trial to run, RUNNING and owned by this process; None when there is
        none to take (a fixed design never asks the sampler)."""
        import optuna

        trial_id = self._pop_waiting(beat)
        if trial_id is not None:
            return self._owned(optuna.Trial(self.study, trial_id), beat)
        return None if self.rows is not None else self._ask(beat)

    def _pop_waiting(self, beat: bool) -> int | None:
        """Like Optuna's own ``ask``, one WAITING trial set RUNNING in a transaction, but
        never falling back to the sampler. The WAITING ids are read once and tried in
        order (reading every waiting trial per claim costs O(rows) each); after a lost
        race the next try jumps to a random place, so many workers spread out instead of
        queueing behind each other on the same rows."""
        import optuna
        from optuna.trial import TrialState

        fresh = False
        while True:
            try:
                trial_id = self._candidates.pop(0)  # the list is shared by a worker's lanes
            except IndexError:
                if fresh:
                    return None
                self._candidates[:] = [
                    t._trial_id for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                ]
                fresh = True
                continue
            if beat:
                self._beat(trial_id)  # before the claim: a kill right after it leaves a stale trial
            try:
                with self._claim_lock():
                    if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                        return trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
            waiting = list(self._candidates)
            if waiting:  # another worker won it
                jump = random.randrange(len(waiting))
                self._candidates[:] = waiting[jump:] + waiting[:jump]

    def _ask(self, beat: bool):
        from optuna.trial import TrialState

        with self.lock():
            slots = len(
                self.study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
                )
            )
            if self.budget is not None and slots >= self.budget:
                return None
            with warnings.catch_warnings():  # Optuna warns that ask() sends no heartbeat: we send it
                warnings.simplefilter("ignore", UserWarning)
                trial = self.study.ask()
            if beat:
                self._beat(trial._trial_id)
        return self._owned(trial, beat)

    def _owned(self, trial, beat: bool):
        if beat:
            trial.set_user_attr(WORKER, this_worker())
        return trial

    # -- run, record, fail ---------------------------------------------------------------
    def execute(self, trial, work: Callable[[dict, Any], Any], tell: bool = True):
        """``work(condition, trial)`` under a heartbeat; its value is told (``tell``) and
        the frozen trial returned. Any error fails the trial, then propagates.

        A worker whose heartbeat was late beyond the grace period finds its trial failed
        by the others (its row is queued again): its result is dropped, it goes on."""
        import optuna
        from optuna.trial import TrialState

        try:
            with self._beating(trial._trial_id):
                value = work((self.suggest or suggest)(trial, self.levels), trial)
                result = self.study.tell(trial, value, skip_if_finished=True) if tell else None
        except optuna.exceptions.UpdateFinishedTrialError:
            result = self.storage.get_trial(trial._trial_id)
        except BaseException:
            self.fail(trial.number)
            raise
        if result is not None and result.state != TrialState.COMPLETE:
            self.say(
                f"c{trial.number:03d}: the other workers took it as dead (heartbeat late by more than "
                "the grace period) and queued it again; this result is dropped"
            )
            if self.on_fail is not None:
                self.on_fail(result)
            return result
        done = next(self._done)
        if result is not None and self.total:
            self.say(f"c{trial.number:03d} done ({result.value:.4f}), {done} by this worker, {self.total} in the study")
        return result

    def next(self, work: Callable[[dict, Any], Any]):
        """Claim one trial and execute it; None when there was none to claim."""
        trial = self.claim()
        return None if trial is None else self.execute(trial, work)

    def fail(self, number: int) -> None:
        from optuna.trial import TrialState

        frozen = self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        if self.on_fail is not None:
            self.on_fail(frozen)

    def _beat(self, trial_id: int) -> None:
        if self.interval:
            self.storage.record_heartbeat(trial_id)

    @contextmanager
    def _beating(self, trial_id: int):
        if not self.interval:
            yield
            return
        stop = threading.Event()

        def beat():
            while not stop.wait(self.interval):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # noqa: BLE001 - one missed beat is fine: the grace period is three
                    continue

        thread = threading.Thread(target=beat, name="qeuopt-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- resume --------------------------------------------------------------------------
    def resume(self) -> QueueState:
        """Fail dead workers' trials and queue their rows again; see the module docstring."""
        import optuna
        from optuna.trial import TrialState

        with self.lock():
            before = {t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if dead_here(trial):
                    self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            trials = self.study.get_trials(deepcopy=False)
            failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in before]
            if self.rows is not None:
                for row in missing_rows(trials, self.rows):
                    self.study.enqueue_trial(row, skip_if_exists=False)
                trials = self.study.get_trials(deepcopy=False)
        for trial in failed:
            self.say(
                f"c{trial.number:03d}: its worker ({owner(trial).get('host')} pid "
                f"{owner(trial).get('pid')}) died; the condition is queued again"
            )
            if self.on_fail is not None:
                self.on_fail(trial)
        return self._state(trials)

    def _state(self, trials) -> QueueState:
        return queue_state(trials, self.budget if self.rows is None else None)

    # -- the whole queue -----------------------------------------------------------------
    def drain(
        self, work: Callable[[dict, Any], Any], wait_s: float | None = None, stop: Callable[[], bool] | None = None
    ) -> QueueState:
        """Run trials until every row is complete (or the budget is spent). While other
        workers hold the last rows, wait for them (a dead one's row comes back to the
        queue and runs here), at most ``wait_s`` seconds when given. Waiting looks at the
        WAITING and RUNNING trials every few seconds, and resumes (a full read, dead
        workers failed) once per heartbeat interval: stale trials cannot appear faster.
        ``stop()``: checked before each claim; True ends the drain (another lane failed)."""
        state = self.resume()
        resumed = time.monotonic()
        deadline = None if wait_s is None else time.monotonic() + wait_s
        said = -math.inf
        while True:
            if stop is not None and stop():
                return self.peek()
            if self.next(work) is not None:
                continue
            if time.monotonic() - resumed >= (self.interval or POLL_S):
                state, resumed = self.resume(), time.monotonic()
            else:
                state = self.peek()
            if not state.open and not state.held:  # done, unless a failure left a row without a trial
                state, resumed = self.resume(), time.monotonic()
                if not state.open and not state.held:
                    return state
            if state.open:
                continue
            others = [h for h in state.held if (h.host, h.pid) != (host_name(), os.getpid())]
            if not others:  # only this worker's other lanes hold rows: they finish them
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return state
            if time.monotonic() - said >= SAY_EVERY_S:
                said = time.monotonic()
                self.say(
                    f"waiting for {len(others)} condition(s) held by other workers: "
                    + "; ".join(map(str, others[:5]))
                    + (" ..." if len(others) > 5 else "")
                )
            time.sleep(POLL_S)

    def peek(self) -> QueueState:
        """The queue without re-queuing: WAITING and RUNNING trials only, for a fixed design."""
        from optuna.trial import TrialState

        if self.rows is None:
            return self._state(self.study.get_trials(deepcopy=False))
        return self._state(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))
