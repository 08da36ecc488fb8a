"""A person steers the search by rating: trials are asked in batches, generated, and told
when their ratings arrive (Optuna's ask/tell).

:func:`advance` is one step and never waits for people: it tells every generated trial
whose images are all rated, then generates trials until ``batch`` await ratings (a fixed
design generates all its remaining rows at once, since a sampler has nothing to learn
there). ``Study.run`` makes one step for objectives ``rating`` and ``combined``; ``qeuopt
steer`` repeats steps while the rating page is open.

A trial waiting for ratings stays RUNNING with the user attribute ``awaiting_rating``;
it has no heartbeat, so Optuna's stale-trial check leaves it alone and a restarted loop
picks it up (redoing its uploads if they were cut off). A steered RUNNING trial without
that attribute died while it was generated and is failed (so run one steering loop per
study).

The value told: ``rating`` is the condition's mean rating on the 1-5 scale (stable for a
single rater); ``combined`` is :func:`qeuopt.ratings.store.condition_scores`'s blend at
the time of telling. A condition whose images were all skipped is told FAIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qeuopt.ratings.preferences import preference_store_for
from qeuopt.ratings.store import condition_scores
from qeuopt.ratings.sync import sync_outbox
from qeuopt.run.timings import Timings
from qeuopt.run.workers import STEERED
from qeuopt.track.schema import CLIP_SCORES_ATTR, RUN_ID_ATTR

AWAITING = "awaiting_rating"
ADAPTIVE_BATCH = 4  # trials a sampler proposes before it hears back: small keeps it responsive


@dataclass
class SteerStep:
    """What one :func:`advance` did."""

    told: dict[int, float | None]  # trial number -> value told (None: told FAIL)
    generated: list[int]  # trial numbers generated, now awaiting ratings
    awaiting: list[int]  # every trial awaiting ratings after the step
    remaining: int  # trials of the design or budget not generated yet
    summary: object = None  # qeuopt.run.study.RunSummary
    timings: Timings = field(default_factory=Timings)

    @property
    def finished(self) -> bool:
        return not self.awaiting and not self.remaining


def advance(study, generator=None, scorer=None, batch: int | None = None, store=None) -> SteerStep:
    """Tell what is rated, then generate up to ``batch`` trials awaiting ratings."""
    from qeuopt.run.queue import design_rows

    opt, tracker = study.optuna_study(), study.tracker()
    own_store = store is None
    store = store or preference_store_for(study.spec)  # ratings and choices: one database, one engine
    try:
        told = tell_rated(study, opt, store)
        run_ids = {
            t.number: t.user_attrs[RUN_ID_ATTR] for t in opt.get_trials(deepcopy=False) if RUN_ID_ATTR in t.user_attrs
        }
        sync_outbox(store, tracker, study.name, run_ids)  # MLflow shows what was told
    finally:
        if own_store:
            store.close()
    rows = design_rows(study.spec)
    loop = study.loop(opt, tracker, rows)
    _fail_orphans(opt, loop)
    _finish_uploads(opt, tracker)
    remaining = loop.resume().open  # queues the design's rows that no trial stands for
    awaiting = _awaiting(opt)
    if batch is None and rows is not None:
        count = remaining  # a fixed design: no sampler learns from the ratings, so every row at once
    else:
        count = min(remaining, max(0, (batch or ADAPTIVE_BATCH) - len(awaiting)))
    timings, generated = Timings(), []
    if count:
        generated, timings = _generate(study, loop, tracker, rows, count, generator, scorer)
    return SteerStep(
        told, generated, [t.number for t in _awaiting(opt)], remaining - count, study._summary(opt, timings), timings
    )


def _awaiting(opt) -> list:
    from optuna.trial import TrialState

    return [t for t in opt.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get(AWAITING)]


def _fail_orphans(opt, loop) -> None:
    """Trials asked but never generated (the loop died mid-condition) free their slot."""
    from optuna.trial import TrialState

    for trial in opt.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not trial.user_attrs.get(AWAITING) and trial.user_attrs.get(STEERED):
            loop.fail(trial.number)


def _generate(study, loop, tracker, rows, count: int, generator, scorer):
    generated = []
    # leaving the block waits for uploads: the rating page lists only FINISHED condition runs
    with study.runner(tracker, rows, generator, scorer) as runner:
        work = study._work(runner)
        for _ in range(count):
            trial = loop.claim(beat=False)  # awaiting trials must not beat: people take their time
            if trial is None:
                break  # another process took the rest
            trial.set_user_attr(STEERED, True)
            loop.execute(trial, work, tell=False)
            trial.set_user_attr(AWAITING, True)
            generated.append(trial.number)
    return generated, runner.timings


def _finish_uploads(opt, tracker) -> None:
    """An awaiting trial whose uploads were cut off (the loop was killed) never reaches the
    rating page, whose runs must be FINISHED: redo the uploads from its files."""
    from qeuopt.run.upload import finish_cut_off_upload

    for trial in _awaiting(opt):
        finish_cut_off_upload(tracker, trial)


def tell_rated(study, opt, store) -> dict[int, float | None]:
    """Tell every awaiting trial whose images all have a rating or a skip."""
    from optuna.trial import TrialState

    waiting = _awaiting(opt)
    if not waiting:
        return {}
    if study.spec.design.objective == "preference":  # pairwise choices: told by their score
        from qeuopt.run.steer_pairs import tell_preferred

        return tell_preferred(study, opt, waiting, store)
    frame = store.frame(study.name)
    scores = None
    if study.spec.design.objective == "combined":
        clip = {
            t.number: sum(t.user_attrs[CLIP_SCORES_ATTR]) / len(t.user_attrs[CLIP_SCORES_ATTR])
            for t in opt.get_trials(deepcopy=False)
            if t.user_attrs.get(CLIP_SCORES_ATTR)
        }
        scores = condition_scores(frame, clip)
    told = {}
    for trial in waiting:
        mine = frame[frame["condition"] == trial.number]
        if set(range(len(trial.user_attrs.get(CLIP_SCORES_ATTR, ())))) - set(mine["image"]):
            continue  # some image has neither a rating nor a skip yet
        value = mine["rating"].dropna().astype(float).mean() if scores is None else scores.at[trial.number, "combined"]
        if math.isnan(value):
            opt.tell(trial.number, state=TrialState.FAIL)
            told[trial.number] = None
        else:
            opt.tell(trial.number, float(value))
            told[trial.number] = float(value)
    return told
