"""Steering by pairwise preferences: ``design.objective = "preference"``.

:func:`qeuopt.run.steer.advance` asks, generates and waits as for ratings; what differs is
when a trial is told and what. A trial is told once it took part in at least
:data:`MIN_COMPARISONS` choices, and the value is its Bradley-Terry score
(:func:`qeuopt.ratings.preferences.preference_scores`) over every generated condition of
the study at that moment.

Why 8: a choice carries at most 1/4 unit of information about a score (a close pair, no
tie), so with the prior's unit precision a score's standard deviation after n choices is at
least ``1 / sqrt(1 + n / 4)``: 0.71 logit after 4, 0.58 after 8, 0.45 after 16. Eight
bring it below the score differences people notice (0.7 logit is 2:1 odds), while a batch
of 4 new conditions still needs only 16 choices (each choice counts for two conditions),
about a minute of clicking. The page's next pair favours uncertain conditions, so trials
awaiting a value are compared first.

A told value stays as told: later choices move the scores (they are relative to the
other conditions), MLflow's ``preference_*`` metrics follow them, Optuna's value does not.
"""

from __future__ import annotations

from qeuopt.ratings.preferences import PreferenceStore, preference_scores, sync_preferences
from qeuopt.track.schema import CLIP_SCORES_ATTR, RUN_ID_ATTR

MIN_COMPARISONS = 8


def tell_preferred(study, opt, waiting, store: PreferenceStore) -> dict[int, float]:
    """Tell each trial of ``waiting`` (awaiting a value) that has enough choices its score."""
    from optuna.trial import TrialState

    generated = [
        t
        for t in opt.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        if CLIP_SCORES_ATTR in t.user_attrs
    ]
    scores = preference_scores(store.choices(study.name), [t.number for t in generated])
    told = {}
    for trial in waiting:
        if trial.number in scores.index and scores.at[trial.number, "preference_count"] >= MIN_COMPARISONS:
            value = float(scores.at[trial.number, "preference_score"])
            opt.tell(trial.number, value)
            told[trial.number] = value
    run_ids = {t.number: t.user_attrs[RUN_ID_ATTR] for t in generated if RUN_ID_ATTR in t.user_attrs}
    sync_preferences(store, study.tracker(), study.name, run_ids)  # MLflow shows what was told
    return told
