"""Pairwise preferences: a durable store of choices, per-condition scores, sync to MLflow.

A *choice* is one rater's answer to "which of these two conditions is better": ``left``,
``right`` or ``tie``, for the pair as it was shown. It lives in the same database as the
ratings, under the same rules: committed before the server acknowledges it, in the same transaction as an outbox row saying the study's scores in
MLflow are out of date. A rater may judge a pair again (people are not consistent, and
the model expects that); undo withdraws that rater's latest choice of the pair.

Scores: :class:`qeuopt.model.BradleyTerry` over every choice of the study (all raters
pooled, no rater effects), with Davidson's ties, a side pull (people favour one side; the
page shows each pair in a random order) and a ridge prior of precision 1, so a condition
with few comparisons has a finite score near 0. ``preference_score`` is that log strength
(0 = an average condition; +1 = preferred e:1 to an average one), ``preference_lower`` and
``preference_upper`` its 95% Laplace interval, ``preference_count`` the choices it took
part in. A condition nobody compared has no score (NaN). Every choice moves every score,
so the sync rewrites all conditions' metrics, with the store's revision as their step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qeuopt.errors import RatingError
from qeuopt.ratings.database import spec_ratings_url
from qeuopt.ratings.store import RatingStore, check_rater, now_iso
from qeuopt.ratings.sync import OutboxSync
from qeuopt.track.schema import PREFERENCE_METRICS

CHOICES = ("left", "right", "tie")
OUTCOME = {"left": 1, "right": -1, "tie": 0}  # the y of BradleyTerry
ALPHA = 1.0  # prior precision of a score: sd 1 logit
LEVEL = 0.95

SCHEMA = """
CREATE TABLE IF NOT EXISTS preferences (
    study TEXT NOT NULL, rater TEXT NOT NULL, left_condition INTEGER NOT NULL, right_condition INTEGER NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie')), at TEXT NOT NULL,
    revision BIGINT PRIMARY KEY, CHECK (left_condition <> right_condition));
CREATE INDEX IF NOT EXISTS preferences_by_pair ON preferences (study, rater, left_condition, right_condition);
CREATE TABLE IF NOT EXISTS preference_events (
    revision {serial}, study TEXT NOT NULL, rater TEXT NOT NULL,
    left_condition INTEGER NOT NULL, right_condition INTEGER NOT NULL, choice TEXT, action TEXT NOT NULL,
    at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS preference_outbox (study TEXT PRIMARY KEY, revision BIGINT NOT NULL);
"""
PAIR = "study = :study AND rater = :rater AND left_condition = :left AND right_condition = :right"


def check_choice(value: Any) -> str | None:
    """``left``, ``right``, ``tie``, or None (withdraw the last choice of the pair)."""
    if value is not None and value not in CHOICES:
        raise RatingError(f"`choice`: one of {', '.join(CHOICES)} or null (undo) is allowed; given {value!r}")
    return value


def check_pair(left: Any, right: Any, known: Mapping[int, int]) -> tuple[int, int]:
    """Two different conditions of the study (``known``: condition -> image count)."""
    for name, value in (("left", left), ("right", right)):
        if isinstance(value, bool) or not isinstance(value, int) or value not in known:
            allowed = ", ".join(map(str, sorted(known))) or "none yet"
            raise RatingError(f"`{name}`: a condition of this study is allowed ({allowed}); given {value!r}")
    if left == right:
        raise RatingError(f"`right`: a condition other than `left` ({left}) is needed; given {right!r}")
    return left, right


class PreferenceStore(RatingStore):
    """The choices (and, inherited, the ratings) of every study in one database."""

    SCHEMAS = (*RatingStore.SCHEMAS, SCHEMA)
    TABLES = (*RatingStore.TABLES, "preferences", "preference_events", "preference_outbox")

    def _choice_event(self, connection, key: dict[str, Any], choice: str | None, action: str) -> int:
        revision = self.db.execute(
            connection,
            "INSERT INTO preference_events (study, rater, left_condition, right_condition, choice, action, at)"
            " VALUES (:study, :rater, :left, :right, :choice, :action, :at) RETURNING revision",
            **key,
            choice=choice,
            action=action,
            at=now_iso(),
        ).scalar_one()
        self.db.execute(
            connection,
            "INSERT INTO preference_outbox VALUES (:study, :revision) ON CONFLICT (study) DO UPDATE SET"
            " revision = excluded.revision",
            study=key["study"],
            revision=revision,
        )
        return revision

    def add(self, study: str, rater: str, left: int, right: int, choice: str) -> int:
        """Store one choice; returns its revision."""
        key = {"study": study, "rater": check_rater(rater), "left": left, "right": right}
        if check_choice(choice) is None:
            raise RatingError("`choice`: left, right or tie is needed to store a choice; given None")
        with self.db.transaction() as connection:
            revision = self._choice_event(connection, key, choice, "choose")
            self.db.execute(
                connection,
                "INSERT INTO preferences VALUES (:study, :rater, :left, :right, :choice, :at, :revision)",
                **key,
                choice=choice,
                at=now_iso(),
                revision=revision,
            )
        return revision

    def withdraw(self, study: str, rater: str, left: int, right: int) -> int | None:
        """Forget the rater's latest choice of the pair as shown (undo); None if there is none."""
        key = {"study": study, "rater": check_rater(rater), "left": left, "right": right}
        with self.db.transaction() as connection:
            gone = self.db.execute(
                connection,
                f"DELETE FROM preferences WHERE revision = (SELECT MAX(revision) FROM preferences WHERE {PAIR})",
                **key,
            )
            if not gone.rowcount:
                return None
            return self._choice_event(connection, key, None, "withdraw")

    def choices(self, study: str, rater: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM preferences WHERE study = :study", {"study": study}
        if rater is not None:
            sql, args = sql + " AND rater = :rater", {**args, "rater": rater}
        return self.db.query(sql + " ORDER BY revision", **args)

    def preference_revision(self, study: str) -> int:
        found = self.db.query("SELECT MAX(revision) AS r FROM preference_events WHERE study = :study", study=study)
        return found[0]["r"] or 0

    def revision(self, study: str) -> int:
        """Grows with every change of the study's ratings or choices (two counters, summed)."""
        return super().revision(study) + self.preference_revision(study)

    def preference_outbox(self, study: str) -> int | None:
        found = self.db.query("SELECT revision FROM preference_outbox WHERE study = :study", study=study)
        return found[0]["revision"] if found else None

    def mark_preferences_synced(self, study: str, revision: int) -> None:
        self._clear_outbox("preference_outbox", revision, study=study)


def preference_store_for(spec) -> PreferenceStore:
    """The store of the study's ratings, with the choices' tables."""
    return PreferenceStore(spec_ratings_url(spec))


# ------------------------------------------------------------------------------ the model
def fit_choices(choices: Sequence[Mapping[str, Any]], conditions: Sequence[int], alpha: float = ALPHA):
    """A fitted :class:`~qeuopt.model.BradleyTerry` over ``conditions`` (its items, in this
    order), or None when no choice involves two of them. Choices of other conditions (no
    longer in the study) are left out."""
    import numpy as np

    from qeuopt.model.bradley_terry import BradleyTerry, pair_matrix

    index = {c: k for k, c in enumerate(conditions)}
    used = [c for c in choices if c["left_condition"] in index and c["right_condition"] in index]
    if not used:
        return None
    left = np.array([index[c["left_condition"]] for c in used])
    right = np.array([index[c["right_condition"]] for c in used])
    y = np.array([OUTCOME[c["choice"]] for c in used])
    if len(set(y.tolist())) > 1:
        return BradleyTerry(alpha=alpha).fit(pair_matrix(left, right, len(conditions)), y)
    # One class cannot be fitted. Say every choice twice: as is and mirrored (left and right
    # swapped, outcome negated: the same statement); a tie as a win each way. With the prior
    # doubled too the optimum is the same and the Hessian doubles, so the covariance is
    # doubled back. The side pull is not fitted from such data.
    first = np.where(y == 0, 1, y)
    twin = (left, right) if y[0] == 0 else (right, left)
    left, right, y = np.r_[left, twin[0]], np.r_[right, twin[1]], np.r_[first, -first]
    model = BradleyTerry(alpha=2 * alpha, fit_intercept=False).fit(pair_matrix(left, right, len(conditions)), y)
    model.covariance_ = 2 * model.covariance_
    return model


def preference_scores(
    choices: Sequence[Mapping[str, Any]], conditions: Sequence[int], alpha: float = ALPHA, level: float = LEVEL
):
    """One row per condition: preference_score, preference_lower, preference_upper,
    preference_count (NaN scores where the count is 0)."""
    import numpy as np
    import pandas as pd

    conditions = list(conditions)
    counts = dict.fromkeys(conditions, 0)
    for c in choices:
        if c["left_condition"] in counts and c["right_condition"] in counts:
            counts[c["left_condition"]] += 1
            counts[c["right_condition"]] += 1
    model = fit_choices(choices, conditions, alpha)
    nan = np.full(len(conditions), np.nan)
    score, (lower, upper) = (nan, (nan, nan)) if model is None else (model.coef_, model.intervals(level))
    table = pd.DataFrame(
        dict(zip(PREFERENCE_METRICS, (score, lower, upper, [counts[c] for c in conditions]))),
        index=pd.Index(conditions, name="condition"),
    )
    table.loc[table["preference_count"] == 0, list(PREFERENCE_METRICS[:3])] = np.nan
    return table


# ------------------------------------------------------------------------------- to MLflow
def sync_preferences(store: PreferenceStore, tracker, study: str, run_ids: Mapping[int, str]) -> int:
    """Write every condition's preference metrics if the study's choices changed; returns
    how many runs were written. The outbox row goes only after MLflow took them all."""
    revision = store.preference_outbox(study)
    if revision is None or not run_ids:
        return 0
    choices = store.choices(study)
    scores = preference_scores(choices, sorted(run_ids))
    for condition, row in scores.iterrows():
        tracker.log(run_ids[condition], metrics={k: float(row[k]) for k in PREFERENCE_METRICS}, step=revision)
    parent = tracker.find_study_run(study)
    if parent is not None:  # every choice, for whoever reads MLflow only
        tracker.log_text(parent, json.dumps({"choices": choices}, indent=1), "preferences.json")
    store.mark_preferences_synced(study, revision)
    return len(scores)


def preference_sync(store: PreferenceStore, tracker, study: str, run_ids) -> OutboxSync:
    """The sync of one study's preference scores (``run_ids()``: condition -> run id)."""
    return OutboxSync(
        lambda: sync_preferences(store, tracker, study, run_ids()),
        lambda: int(store.preference_outbox(study) is not None),
        tracker,
        "preference scores",
    )
