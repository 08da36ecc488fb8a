"""Optimize any evaluator over a grid of factor levels, with a budget of evaluations.

Every strategy runs through one Optuna study (in memory, or in ``storage`` so the study
engine can persist and resume it):

- ``"oa"``: designed experiments in rounds. Round 1 is an orthogonal array (the largest
  published one that holds the factors within the round's share of the budget; when
  none does, e.g. nine artists in a slot, a nearly orthogonal balanced design built by
  column exchange). Each later round fits :class:`~qeuopt.model.setting.SettingModel` to
  everything so far and runs the settings that win under posterior draws of its effects
  (Thompson sampling). Rows go in with ``enqueue_trial``.
- ``"tpe"``, ``"gp"``, ``"random"``: Optuna's samplers; numeric factors with evenly
  spaced levels are suggested as numbers (their order and spacing visible), others as
  categories.
- ``"full"``: every combination once (the budget must cover the grid; any rest is unused).
- ``"auto"`` (default): a balanced design, then rounds chosen by the evidence: Thompson
  draws of a model only while cross-validation says it predicts, and Optuna's GP sampler
  (expected improvement, an explicit exploration term) for the rest, and a last round
  that re-measures the front-runners; see :mod:`qeuopt.run.adaptive`. Its results on
  families the model was not built for are in ``benchmarks/worlds.py``.

``recommended`` is what the toolkit would tell the user to use: for ``auto`` the evaluated
setting with the best estimate (:func:`~qeuopt.run.adaptive.measured_pick`); for ``oa`` and
``full`` the best prediction of the model chosen by cross-validation
(:class:`~qeuopt.model.select.ModelSelector`; possibly never evaluated), or the best
evaluated setting when no model predicted held-out conditions better than their mean;
for the samplers the best evaluated setting. ``recommend="model"`` or ``"best"``
overrides that choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qeuopt.errors import EvaluationError, InputError, NoDataError
from qeuopt.levels import duplicate_levels, find_level, full_grid, grid_rows

STRATEGIES = ("auto", "oa", "tpe", "gp", "random", "full")
SAMPLERS = ("tpe", "gp", "random")
RECOMMENDERS = ("auto", "model", "best")


@dataclass(frozen=True, eq=False)
class OptimizeResult:
    """What :func:`optimize` found.

    ``recommended``: condition dict to use (levels are the objects given in ``factors``).
    ``history``: one row per evaluation: ``trial``, ``round``, factor columns, ``value``.
    ``best_observed``: the evaluated condition with the best mean value.
    ``predicted``: the model's predicted value of ``recommended`` (NaN when not modelled).
    ``strategy``: the strategy that ran. ``study``: the Optuna study.
    ``model``: the fitted :class:`~qeuopt.model.select.ModelSelector` behind
    ``recommended`` (``chosen_``, ``reason_``, ``cv_rmse_``), None when not modelled.
    """

    recommended: dict[str, Any]
    history: pd.DataFrame
    best_observed: dict[str, Any]
    predicted: float
    strategy: str
    study: Any
    model: Any = None


def optimize(
    factors: Mapping[str, Sequence],
    evaluate: Callable[[dict], float],
    *,
    budget: int,
    strategy: str = "auto",
    seed: int = 0,
    direction: str = "maximize",
    recommend: str = "auto",
    storage=None,
    study_name: str | None = None,
    with_trial: bool = False,
) -> OptimizeResult:
    """Spend at most ``budget`` calls of ``evaluate(condition) -> float`` to find the best
    setting of ``factors`` (name -> list of levels); see the module docstring.

    ``with_trial=True`` calls ``evaluate(condition, trial)`` instead, for callers (the study
    engine) that file their results under the Optuna trial."""
    levels = _check_factors(factors)
    grid = math.prod(len(values) for values in levels.values())
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("direction", direction, ("maximize", "minimize"))
    _check_choice("recommend", recommend, RECOMMENDERS)
    _check_budget(budget, strategy, grid)
    resolved = strategy
    call = evaluate if with_trial else (lambda condition, trial: evaluate(condition))
    study = _open_study(resolved, seed, direction, storage, study_name, levels, budget)
    # "oa" and "full" keep categorical suggestions: studies stored by earlier versions resume
    runner = _Runner(
        levels, call, study, sign=1.0 if direction == "maximize" else -1.0, numeric=resolved in ("auto", *SAMPLERS)
    )
    if resolved in SAMPLERS:
        runner.sample(budget - len(runner.records))
    elif resolved == "full":
        runner.run_rows(list(grid_rows(levels)), round_number=1)
    elif resolved == "auto":
        from qeuopt.run.adaptive import run_adaptive

        run_adaptive(runner, budget, np.random.default_rng(seed))
    else:
        from qeuopt.run.adaptive import run_oa_rounds

        run_oa_rounds(runner, budget, np.random.default_rng(seed))
    use_model = recommend == "model" or (recommend == "auto" and resolved not in SAMPLERS)
    if use_model and resolved == "auto":
        from qeuopt.run.adaptive import measured_pick

        recommended, predicted, model = measured_pick(runner, seed)
    else:
        recommended, predicted, model = runner.model_pick(seed) if use_model else (runner.best(), math.nan, None)
    return OptimizeResult(recommended, runner.history(), runner.best(), predicted, resolved, runner.study, model)


# ---------------------------------------------------------------------------- checks
def _check_factors(factors) -> dict[str, list]:
    if not isinstance(factors, Mapping) or not factors:
        raise InputError(f"`factors`: a mapping name -> list of levels is needed; given {factors!r}")
    levels = {}
    for name, values in factors.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise InputError(f"`factors.{name}`: a non-empty list of levels is needed; given {values!r}")
        if duplicate_levels(values):
            raise InputError(
                f"`factors.{name}`: levels must be distinct; given {list(values)}, "
                f"repeating {duplicate_levels(values)!r}"
            )
        levels[name] = list(values)
    return levels


def _check_choice(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"`{name}`: allowed {', '.join(map(repr, allowed))}; given {value!r}")


def _check_budget(budget, strategy: str, grid: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InputError(f"`budget`: an int >= 1 (evaluations) is needed; given {budget!r}")
    if strategy == "full" and budget < grid:
        raise InputError(
            f"`budget`: strategy 'full' evaluates all {grid} combinations, so a budget "
            f">= {grid} is needed; given {budget}. Use 'oa' or 'auto' for a smaller budget"
        )


# ---------------------------------------------------------------------- the study
def _open_study(strategy: str, seed: int, direction: str, storage, study_name, levels, budget: int):
    import optuna

    from qeuopt.run.adaptive import first_round_size
    from qeuopt.run.queue import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if strategy == "auto":  # the design replaces the GP's random start-up trials
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=first_round_size(levels, budget))
    else:  # enqueued rows ignore the sampler, so designed strategies only need a cheap one
        sampler = make_sampler(strategy if strategy in SAMPLERS else "random", seed)
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=sampler,
        direction=direction,
        load_if_exists=study_name is not None,
    )


class _Runner:
    """Runs conditions through the study and keeps the records, with exact level objects."""

    def __init__(self, levels: dict[str, list], evaluate, study, sign: float, numeric: bool = False):
        from qeuopt.run.loop import TrialLoop

        self.levels, self.evaluate, self.study, self.sign = levels, evaluate, study, sign
        self.numeric = numeric
        self.loop = TrialLoop(study, levels, suggest=self._suggest if numeric else None)
        self.records: list[dict] = [self._record(t, 0) for t in self._done_trials()]

    def _suggest(self, trial, levels) -> dict:
        """Evenly spaced numbers reach the sampler as numbers, mapped back to the levels."""
        from qeuopt.run.adaptive import suggest_levels

        return {name: find_level(name, levels[name], value) for name, value in suggest_levels(trial, levels).items()}

    def _done_trials(self):
        from optuna.trial import TrialState

        return sorted(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)

    def _record(self, trial, round_number: int) -> dict:
        condition = {name: find_level(name, values, trial.params[name]) for name, values in self.levels.items()}
        return {"trial": trial.number, "round": round_number, **condition, "value": float(trial.value)}

    def _run_one(self, round_number: int) -> None:
        # claiming, telling and failing the trial is the one run loop's job (qeuopt.run.loop)
        frozen = self.loop.next(self._checked)
        self.records.append(self._record(frozen, round_number))

    def _checked(self, condition: dict, trial) -> float:
        value = float(self.evaluate(condition, trial))
        if not math.isfinite(value):
            raise EvaluationError(f"`evaluate`: a finite number is needed; returned {value!r} for {condition}")
        return value

    def sample(self, n: int, round_number: int = 1) -> None:
        for _ in range(max(n, 0)):
            self._run_one(round_number)

    def run_rows(self, rows: list[dict], round_number: int) -> None:
        for row in rows:
            self.study.enqueue_trial(row, skip_if_exists=False)
            self._run_one(round_number)

    def history(self) -> pd.DataFrame:
        def column(name, dtype):
            return pd.Series([record[name] for record in self.records], dtype=dtype)

        # object columns keep the level objects (pandas would make int64 / its own str)
        return pd.DataFrame(
            {
                "trial": column("trial", int),
                "round": column("round", int),
                **{name: column(name, object) for name in self.levels},
                "value": column("value", float),
            }
        )

    def best(self) -> dict[str, Any]:
        """The evaluated condition with the best mean value (replicates averaged)."""
        frame = self.history()
        if frame.empty:
            raise NoDataError("`budget`: nothing was evaluated, so nothing can be recommended")
        names = list(self.levels)
        totals: dict[tuple, list] = {}
        for key, value in zip(map(tuple, frame[names].itertuples(index=False)), frame["value"]):
            totals.setdefault(key, []).append(self.sign * value)
        best = max(totals, key=lambda key: np.mean(totals[key]))  # first evaluated wins ties
        return dict(zip(names, best))

    def fit_model(self, seed: int):
        from qeuopt.model.setting import SettingModel

        frame = self.history()
        model = SettingModel(levels=self.levels, random_state=seed)
        return model.fit(frame[list(self.levels)], self.sign * frame["value"].to_numpy())

    def fit_selector(self, seed: int, candidates=None):
        """The model chosen by cross-validation over everything evaluated so far."""
        from qeuopt.model.select import CANDIDATES, ModelSelector

        frame = self.history()
        model = ModelSelector(candidates or CANDIDATES, levels=self.levels, random_state=seed)
        return model.fit(frame[list(self.levels)], self.sign * frame["value"].to_numpy())

    def model_pick(self, seed: int) -> tuple[dict[str, Any], float, Any]:
        """The setting with the best predicted score under the chosen model (the best
        observed one when no model beat the mean), its prediction, and the model."""
        model = self.fit_selector(seed)
        if model.chosen_ == "mean":
            best = self.best()
            return best, self.sign * float(model.predict(pd.DataFrame([best], dtype=object))[0]), model
        candidates = full_grid(self.levels, random_state=seed)
        predicted = model.predict(candidates)
        best = int(np.argmax(predicted))
        row = candidates.iloc[best]
        return (
            {name: find_level(name, self.levels[name], row[name]) for name in self.levels},
            self.sign * float(predicted[best]),
            model,
        )
