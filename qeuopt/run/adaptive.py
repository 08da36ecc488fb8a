"""The rounds of :func:`qeuopt.optimize`'s ``auto`` strategy (a design, then rounds the evidence
supports) and of its ``oa`` strategy (:func:`run_oa_rounds`).

1. Round 1 is a balanced design (an orthogonal array where one fits) with enough runs to
   read every main effect once (``1 + sum(levels - 1)``, the saturated size), capped at
   half the budget. Its balance keeps the effects readable; no share of the budget was
   tuned on any benchmark family.
2. Each later round (1/8 of the budget) first cross-validates the candidate models
   (:class:`~qeuopt.model.select.ModelSelector`). When a structural model (additive, or
   with the pair term) predicts held-out conditions better than the mean, half the round
   goes to its Thompson draws (exploitation of a model that has shown it predicts); the
   rest, or the whole round when no structural model won, goes to Optuna's GP sampler,
   whose expected-improvement acquisition is the explicit exploration term: it keeps
   proposing where the GP is uncertain, so a wrong structural model cannot trap the search.
3. The last round re-measures the settings the recommendation would rank first
   (:func:`confirmation_rows`): under noise the best single observation is mostly luck.
4. The recommendation is the evaluated setting with the best estimate: the chosen
   model's prediction corrected by a GP over its residuals (observed settings lean
   towards their observed means as far as the noise allows), or the observed means
   (shrunk when replicated) when no model beat the mean.

Numeric factors whose levels are evenly spaced are suggested to Optuna as numbers
(``suggest_int``/``suggest_float`` with a step), so the GP and TPE see their order and
spacing; other factors stay categorical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qeuopt.model.setting import is_numeric_level

# Share of the budget for each later round (both strategies), and for the ``oa`` strategy's
# first round. Measured on 100 synthetic problems of the model's own family
# (benchmarks/efficiency.py): a first 0.5 beat 0.33, 0.75 and 1.0 at budgets 18-72 (tied
# at 9); later 1/8 against 1/16 and 1/4 was within noise.
OA_FIRST_ROUND_SHARE = 0.5
LATER_ROUND_SHARE = 0.125
STRUCTURAL = ("additive", "pair")  # models with effects worth exploiting by Thompson draws


def numeric_step(levels: Sequence) -> float | None:
    """The common spacing of evenly spaced numeric levels (>= 3), else None."""
    if len(levels) < 3 or not all(is_numeric_level(v) for v in levels):
        return None
    values = np.sort(np.asarray(levels, dtype=float))
    gaps = np.diff(values)
    step = round(float(values[-1] - values[0]) / (len(values) - 1), 12)  # a decimal Optuna accepts
    return step if step > 0 and np.allclose(gaps, step, rtol=1e-9, atol=1e-12) else None


def suggest_levels(trial, levels: Mapping[str, Sequence]) -> dict[str, Any]:
    """A trial's condition with numeric suggestions where levels are evenly spaced numbers
    (fixed params of enqueued rows come back as given; sampled numbers are snapped by the
    caller to the level objects)."""
    condition = {}
    for name, values in levels.items():
        step = numeric_step(values)
        if step is None:
            condition[name] = trial.suggest_categorical(name, list(values))
        elif all(isinstance(v, (int, np.integer)) for v in values):
            condition[name] = trial.suggest_int(name, int(min(values)), int(max(values)), step=int(step))
        else:
            condition[name] = trial.suggest_float(name, float(min(values)), float(max(values)), step=step)
    return condition


def first_round_size(levels: Mapping[str, Sequence], budget: int) -> int:
    """Runs to read every main effect once, at most half the budget (at least 1)."""
    saturated = 1 + sum(len(values) - 1 for values in levels.values())
    return max(1, min(saturated, math.ceil(budget / 2)))


def run_adaptive(runner, budget: int, rng: np.random.Generator) -> None:
    """Round 1: a balanced design; then rounds of Thompson draws and GP proposals."""
    from qeuopt.design.balanced import spread_rows

    first = first_round_size(runner.levels, budget)
    if len(runner.records) < first:
        rows = spread_rows(runner.levels, first, rng)
        runner.run_rows(rows[len(runner.records) :], 1)
    round_number = 1
    while len(runner.records) < budget:
        round_number += 1
        size = min(budget - len(runner.records), max(1, math.ceil(budget * LATER_ROUND_SHARE)))
        if len(runner.records) + size >= budget:  # the last round checks what would be recommended
            runner.run_rows(confirmation_rows(runner, size, int(rng.integers(2**31))), round_number)
            continue
        # the GP candidate only matters for the final pick: here the question is whether
        # a structural model has earned Thompson draws, and leaving it out saves time
        selector = runner.fit_selector(int(rng.integers(2**31)), candidates=("mean", *STRUCTURAL))
        exploit = math.ceil(size / 2) if selector.chosen_ in STRUCTURAL else 0
        rows = thompson_rows(runner, selector, exploit, rng) if exploit else []
        runner.run_rows(rows, round_number)
        runner.sample(size - len(rows), round_number)  # the GP sampler's proposals


def run_oa_rounds(runner, budget: int, rng: np.random.Generator) -> None:
    """The ``oa`` strategy: an array for half the budget, then rounds of Thompson draws
    of :class:`~qeuopt.model.setting.SettingModel` until the budget is spent."""
    from qeuopt.design.balanced import spread_rows

    first = max(1, min(budget, math.ceil(budget * OA_FIRST_ROUND_SHARE)))
    round_number = 1
    if len(runner.records) < first:
        rows = spread_rows(runner.levels, first, rng)
        runner.run_rows(rows[len(runner.records) :], round_number)
    while len(runner.records) < budget:
        round_number += 1
        size = min(budget - len(runner.records), max(1, math.ceil(budget * LATER_ROUND_SHARE)))
        model = runner.fit_model(int(rng.integers(2**31)))
        runner.run_rows(thompson_rows(runner, model, size, rng), round_number)


def confirmation_rows(runner, size: int, seed: int) -> list[dict]:
    """The ``size`` settings ranked best by the estimate the recommendation uses, once each.

    The best of many single noisy observations is mostly its luck (the winner's curse):
    on replayed human ratings a setting seen once at a high score beat the true best
    setting seen several times. Measuring the front-runners again before choosing
    shrinks that luck, and runs the model's pick at least once if it was never tried."""
    from qeuopt.levels import full_grid

    candidates = full_grid(runner.levels, random_state=seed)
    estimate, _ = estimates(runner, candidates, seed)
    names = list(runner.levels)
    return [dict(zip(names, candidates.iloc[i])) for i in np.argsort(-estimate, kind="stable")[:size]]


def estimates(runner, candidates, seed: int) -> tuple[np.ndarray, Any]:
    """Each candidate's estimated score (larger is better) and the model behind it.

    The model chosen by cross-validation gives the estimate; a structural one (additive,
    pair) plus a GP over its residuals (:class:`~qeuopt.model.levelgp.ResidualGP`), so an
    observed setting is not ranked by the model alone when the data depart from it; with
    no model, the observed means (shrunk when replicates measure the noise)."""
    from qeuopt.model.levelgp import ResidualGP

    model = runner.fit_selector(seed)
    if model.chosen_ not in STRUCTURAL:
        return model.predict(candidates), model
    frame = runner.history()
    corrected = ResidualGP(model.model_, levels=runner.levels, random_state=seed)
    corrected.fit(frame[list(runner.levels)], runner.sign * frame["value"].to_numpy())
    return corrected.predict(candidates), model


def measured_pick(runner, seed: int) -> tuple[dict[str, Any], float, Any]:
    """The recommendation: the evaluated setting with the best estimate, that estimate
    (in the caller's direction), and the model.

    Only evaluated settings compete: the last round has measured the settings ranked
    first, the model's favourite among them, so a setting never tried would win only on
    the model's word after the data had their say (on worlds with interactions the
    model cannot express, such picks cost more than they gained)."""
    from qeuopt.levels import find_level

    names = list(runner.levels)
    frame = runner.history()
    observed = frame[names].drop_duplicates().reset_index(drop=True)
    estimate, model = estimates(runner, observed, seed)
    best = int(np.argmax(estimate))  # ties: the first evaluated
    row = observed.iloc[best]
    pick = {name: find_level(name, runner.levels[name], row[name]) for name in names}
    return pick, runner.sign * float(estimate[best]), model


def thompson_rows(runner, model, size: int, rng: np.random.Generator) -> list[dict]:
    """Distinct argmax settings of posterior draws of ``model``, up to ``size``."""
    from qeuopt.levels import full_grid

    candidates = full_grid(runner.levels, random_state=int(rng.integers(2**31)))
    draws = model.sample_predictions(candidates, n_draws=4 * size, random_state=rng)
    picks = list(dict.fromkeys(np.argmax(draws, axis=1).tolist()))[:size]
    names = list(runner.levels)
    return [dict(zip(names, candidates.iloc[i])) for i in picks]
