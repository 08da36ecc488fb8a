"""The pairwise page's API: which two conditions to show next, and storing the choice.

Routes (mounted by :mod:`qeuopt.ratings.server`; replies are JSON, errors 4xx with a message):

    GET  /pairs                          the page (static/pairs.html)
    GET  /api/pairs/next?rater=NAME      {rater, left, right, gain, comparisons, mine}: two conditions
                                         (as in /api/study), or left = right = null with a message
    GET  /api/pairs?rater=NAME           {rater, choices: [{left, right, choice}]}, oldest first
    GET  /api/pairs/scores               {scores: [{condition, preference_score, _lower, _upper, _count}]}
    POST /api/pairs                      {rater, left, right, choice}: "left", "right", "tie", or null
                                         to withdraw the rater's latest choice of that pair (undo);
                                         answered only after the choice is committed to disk

The next pair is the one whose judgement is expected to teach the model the most
(:meth:`qeuopt.model.BradleyTerry.pair_information`: uncertain and close conditions),
among the pairs this rater has not judged yet (every pair again once all are judged), in
a random left/right order so the side pull can be estimated and does not favour anyone.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any

from qeuopt.errors import RatingError
from qeuopt.ratings.preferences import (
    PreferenceStore,
    check_choice,
    check_pair,
    fit_choices,
    preference_scores,
    preference_sync,
)
from qeuopt.ratings.store import check_rater
from qeuopt.track.schema import PREFERENCE_METRICS

STATIC = {
    "/pairs": ("pairs.html", "text/html; charset=utf-8"),
    "/static/pairs.js": ("pairs.js", "text/javascript"),
    "/static/pairs.css": ("pairs.css", "text/css"),
}


class PairsApp:
    """The pairwise side of a rating server: one study, its catalog, the choices' store."""

    def __init__(self, study: str, catalog, store: PreferenceStore, tracker):
        self.study, self.catalog, self.store = study, catalog, store  # the rating server's, which closes it
        self.sync = preference_sync(self.store, tracker, study, catalog.run_ids)
        self._random = random.Random()
        self._fitted: tuple[tuple, Any] = ((), None)  # (revision, conditions) -> model: refit on change only
        self._lock = threading.Lock()

    def start(self) -> PairsApp:
        self.sync.start()
        return self

    def stop(self) -> None:
        self.sync.stop()

    # -- GET ---------------------------------------------------------------------------------
    def get(self, path: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        if path == "/api/pairs/next":
            return self.next_pair(query.get("rater", [""])[0])
        if path == "/api/pairs":
            return self.choices_of(query.get("rater", [""])[0])
        if path == "/api/pairs/scores":
            return self.scores()
        raise RatingError(f"no such API: {path}; allowed: /api/pairs, /api/pairs/next, /api/pairs/scores")

    def _model(self, conditions: list[int]):
        key = (self.store.preference_revision(self.study), tuple(conditions))
        with self._lock:
            if self._fitted[0] != key:
                self._fitted = (key, fit_choices(self.store.choices(self.study), conditions))
            return self._fitted[1]

    def next_pair(self, rater: str) -> dict[str, Any]:
        import numpy as np

        from qeuopt.model.bradley_terry import most_informative_pair

        rater = check_rater(rater)
        entries = self.catalog.entries()
        conditions = [e.number for e in entries]
        mine = self.store.choices(self.study, rater)
        reply = {"rater": rater, "comparisons": len(self.store.choices(self.study)), "mine": len(mine)}
        if len(entries) < 2:
            return {
                **reply,
                "left": None,
                "right": None,
                "gain": None,
                "message": f"{len(entries)} finished condition(s): two are needed to compare",
            }
        index = {c: k for k, c in enumerate(conditions)}
        allowed = ~np.eye(len(conditions), dtype=bool)
        for c in mine:
            if c["left_condition"] in index and c["right_condition"] in index:
                allowed[index[c["left_condition"]], index[c["right_condition"]]] = False
                allowed[index[c["right_condition"]], index[c["left_condition"]]] = False
        if not allowed.any():  # this rater has judged every pair: any pair may come again
            allowed = ~np.eye(len(conditions), dtype=bool)
        model = self._model(conditions)
        rng = np.random.default_rng(self._random.getrandbits(64))
        if model is None:  # no choice yet: every pair teaches as much
            i, j = rng.choice(np.argwhere(np.triu(allowed, 1)))
            gain = None
        else:
            i, j = most_informative_pair(model, allowed, rng)
            gain = float(model.pair_information()[i, j])
        if self._random.random() < 0.5:
            i, j = j, i
        return {**reply, "left": entries[i].public(), "right": entries[j].public(), "gain": gain}

    def choices_of(self, rater: str) -> dict[str, Any]:
        rater = check_rater(rater)
        return {
            "rater": rater,
            "choices": [
                {"left": c["left_condition"], "right": c["right_condition"], "choice": c["choice"]}
                for c in self.store.choices(self.study, rater)
            ],
        }

    def scores(self) -> dict[str, Any]:
        table = preference_scores(self.store.choices(self.study), [e.number for e in self.catalog.entries()])
        rows = table.reset_index().to_dict("records")
        return {
            "scores": [{k: (None if v != v else v) for k, v in r.items()} for r in rows],  # NaN is not JSON
            "metrics": list(PREFERENCE_METRICS),
        }

    # -- POST --------------------------------------------------------------------------------
    def choose(self, body: Any) -> dict[str, Any]:
        """Store one choice (or withdraw the latest of the pair when ``choice`` is null)."""
        if not isinstance(body, dict):
            raise RatingError(f"request body: a JSON object is allowed; given {type(body).__name__}")
        if set(body) != {"rater", "left", "right", "choice"}:
            raise RatingError(
                f"request body: keys rater, left, right, choice are expected; given {', '.join(sorted(body)) or 'none'}"
            )
        rater = check_rater(body["rater"])
        left, right = check_pair(body["left"], body["right"], self.catalog.known())
        choice = check_choice(body["choice"])
        if choice is None:
            revision = self.store.withdraw(self.study, rater, left, right)
        else:
            revision = self.store.add(self.study, rater, left, right, choice)
        self.sync.notify()
        return {"rater": rater, "left": left, "right": right, "choice": choice, "revision": revision}
