import numpy as np
import pytest

from qeuopt.design.balanced import balanced_design, spread_rows
from qeuopt.errors import EvaluationError, InputError
from qeuopt.run.rounds import optimize
from qeuopt.testing.synthetic import make_problem

FACTORS = {
    "style": ["ink", "oil", "pastel"],
    "strength": [0.35, 0.55, 0.75],
    "steps": [20, 30, 40],
    "cfg": [5.0, 8.0, 11.0],
}
BEST = {"style": "oil", "strength": 0.55, "steps": 40, "cfg": 5.0}


def additive(condition):
    """Noise-free, additive, optimum at BEST."""
    return (
        {"ink": 0.0, "oil": 2.0, "pastel": 1.0}[condition["style"]]
        - 10 * abs(condition["strength"] - 0.55)
        + condition["steps"] / 20
        - condition["cfg"] / 5
    )


def _assert_exact_levels(condition, factors):
    assert set(condition) == set(factors)
    for name, value in condition.items():
        assert any(value is level for level in factors[name]), (name, value)


@pytest.mark.parametrize("strategy", ["oa", "tpe", "random", "gp", "auto"])
def test_strategies_return_exact_levels_and_spend_the_budget(strategy):
    budget = 12
    result = optimize(FACTORS, additive, budget=budget, strategy=strategy, seed=1)
    _assert_exact_levels(result.recommended, FACTORS)
    _assert_exact_levels(result.best_observed, FACTORS)
    assert len(result.history) == budget
    for row in result.history[list(FACTORS)].to_dict("records"):
        _assert_exact_levels(row, FACTORS)
    assert result.history["value"].tolist() == [
        additive(row) for row in result.history[list(FACTORS)].to_dict("records")
    ]


def test_oa_starts_with_an_array_and_finds_the_optimum_of_an_additive_response():
    result = optimize(FACTORS, additive, budget=18, strategy="oa")
    first = result.history[result.history["round"] == 1]
    assert result.strategy == "oa" and len(first) == 9 and result.history["round"].max() > 1
    for name, _levels in FACTORS.items():  # round 1 is an L9: every level three times
        assert first[name].value_counts().tolist() == [3, 3, 3]
    assert result.recommended == BEST


def test_minimize_flips_the_recommendation_and_the_best_observed():
    up = optimize(FACTORS, additive, budget=18, strategy="oa", seed=2)
    down = optimize(FACTORS, lambda c: -additive(c), budget=18, strategy="oa", direction="minimize", seed=2)
    assert down.recommended == up.recommended == BEST
    assert down.predicted == pytest.approx(-up.predicted)
    sampled = optimize(FACTORS, lambda c: -additive(c), budget=15, strategy="random", direction="minimize")
    assert -additive(sampled.recommended) == sampled.history["value"].min()


def test_full_runs_every_combination_once_and_auto_runs_rounds():
    small = {"a": ["x", "y"], "b": [1, 2, 3]}
    value = lambda c: {"x": 0, "y": 1}[c["a"]] + c["b"]
    result = optimize(small, value, budget=10, strategy="full")
    assert result.strategy == "full" and len(result.history) == 6
    assert result.history[["a", "b"]].drop_duplicates().shape[0] == 6
    assert result.recommended == {"a": "y", "b": 3}
    assert optimize(small, value, budget=10).strategy == "auto"


def test_samplers_recommend_the_best_evaluated_unless_asked_for_the_model():
    result = optimize(FACTORS, additive, budget=10, strategy="random", seed=3)
    assert additive(result.recommended) == result.history["value"].max()
    assert np.isnan(result.predicted)
    modelled = optimize(FACTORS, additive, budget=10, strategy="random", seed=3, recommend="model")
    assert not np.isnan(modelled.predicted)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(strategy="grid"), "strategy"),
        (dict(budget=0), "budget"),
        (dict(budget=2.5), "budget"),
        (dict(budget=True), "budget"),
        (dict(direction="max"), "direction"),
        (dict(recommend="x"), "recommend"),
        (dict(strategy="full", budget=80), "budget"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
    arguments = dict(budget=9) | kwargs
    with pytest.raises(InputError, match=f"`{field}`"):
        optimize(FACTORS, additive, **arguments)


@pytest.mark.parametrize(
    "factors, field",
    [({}, "factors"), ({"a": []}, "factors.a"), ({"a": [1, 1]}, "factors.a"), ({"a": "xyz"}, "factors.a")],
)
def test_invalid_factors_name_the_factor(factors, field):
    with pytest.raises(InputError, match=f"`{field}`"):
        optimize(factors, additive, budget=3)


def test_a_stored_study_resumes_and_counts_earlier_evaluations(tmp_path):
    storage = f"sqlite:///{tmp_path / 'opt.db'}"
    calls = []
    counted = lambda c: calls.append(c) or additive(c)
    optimize(FACTORS, counted, budget=6, strategy="random", storage=storage, study_name="s")
    result = optimize(FACTORS, counted, budget=10, strategy="random", storage=storage, study_name="s")
    assert len(calls) == 10 and len(result.history) == 10
    for row in result.history[list(FACTORS)].to_dict("records"):
        _assert_exact_levels(row, FACTORS)


def test_a_failing_evaluator_marks_the_trial_failed_and_raises(tmp_path):
    import optuna

    def broken(condition):
        raise RuntimeError("GPU fell over")

    storage = f"sqlite:///{tmp_path / 'opt.db'}"
    with pytest.raises(RuntimeError, match="GPU"):
        optimize(FACTORS, broken, budget=3, strategy="oa", storage=storage, study_name="s")
    states = [t.state.name for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == ["FAIL"]
    with pytest.raises(EvaluationError, match="`evaluate`: a finite number"):
        optimize(FACTORS, lambda c: float("nan"), budget=3, strategy="random")


def test_spread_rows_use_a_published_array_when_one_fits():
    rows = spread_rows(FACTORS, 9, np.random.default_rng(0))
    assert len(rows) == 9
    for name, levels in FACTORS.items():  # L9: every level three times
        assert sorted(levels.index(row[name]) for row in rows) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_balanced_design_spreads_levels_evenly_and_near_orthogonally():
    sizes, runs = [9, 7, 5, 3], 18
    codes = balanced_design(sizes, runs, np.random.default_rng(0))
    assert codes.shape == (runs, 4)
    for column, k in zip(codes.T, sizes):
        counts = np.bincount(column, minlength=k)
        assert counts.max() - counts.min() <= 1
    # the 5- and 3-level columns can be exactly proportional in 18 runs... nearly so here
    table = np.zeros((5, 3))
    np.add.at(table, (codes[:, 2], codes[:, 3]), 1)
    assert np.abs(table - np.outer(table.sum(1), table.sum(0)) / runs).max() <= 1


@pytest.mark.slow
def test_oa_beats_best_of_random_on_synthetic_problems():
    # The efficiency benchmark in miniature: same problems, same budget, same noise.
    oa, rnd = [], []
    for seed in range(6):
        problem = make_problem(seed)
        oa.append(problem.regret(optimize(problem.factors, problem.evaluate, budget=36, seed=seed).recommended))
        problem.reset_noise()
        found = optimize(problem.factors, problem.evaluate, budget=36, strategy="random", seed=seed)
        rnd.append(problem.regret(found.recommended))
    assert np.median(oa) < np.median(rnd)


def test_synthetic_problem_optimum_is_the_grid_maximum_and_its_noise_replays():
    problem = make_problem(5, n_artists=(3, 4))
    values = [problem.true_value(c) for c in problem.all_conditions()]
    assert len(values) == problem.grid_size() and problem.optimum() == pytest.approx(max(values))
    assert problem.grid_mean() == pytest.approx(np.mean(values))
    assert problem.regret(problem.best_condition()) == pytest.approx(0.0)
    condition = next(problem.all_conditions())
    for name in ("scheduler", "steps"):  # inert factors change nothing
        for level in problem.factors[name]:
            assert problem.true_value(condition | {name: level}) == problem.true_value(condition)
    first = [problem.evaluate(condition) for _ in range(3)]
    problem.reset_noise()
    assert [problem.evaluate(condition) for _ in range(3)] == first
    assert make_problem(5, n_artists=(3, 4)).evaluate(condition) == first[0]
    with pytest.raises(ValueError, match="`condition.strength`"):
        problem.true_value(condition | {"strength": 0.5})


def test_qeuopt_optimize_is_the_public_function():
    import qeuopt
    import qeuopt.run.rounds  # importing the module does not shadow the function

    result = qeuopt.optimize(FACTORS, additive, budget=4, strategy="random")
    assert len(result.history) == 4


def test_auto_starts_with_a_main_effects_design_then_adds_rounds_and_says_which_model():
    from qeuopt.run.adaptive import first_round_size

    result = optimize(FACTORS, additive, budget=24, seed=4)
    first = result.history[result.history["round"] == 1]
    assert first_round_size(FACTORS, 24) == 9 and len(first) == 9  # 1 + 4 x 2 effects
    for name in FACTORS:  # an L9: every level three times
        assert first[name].value_counts().tolist() == [3, 3, 3]
    assert result.strategy == "auto" and result.history["round"].max() >= 3 and len(result.history) == 24
    assert result.model.chosen_ in ("additive", "pair", "gp") and "cross-validated" in result.model.reason_
    assert additive(result.recommended) == pytest.approx(additive(BEST))
    evaluated = result.history[list(FACTORS)].to_dict("records")
    assert result.recommended in evaluated  # the model's favourite was measured before it was recommended


def test_auto_spends_its_last_round_re_measuring_the_front_runners():
    noise = np.random.default_rng(5).normal(size=200)
    calls = iter(noise)
    result = optimize(FACTORS, lambda c: float(next(calls)), budget=24, seed=3)
    history = result.history
    last = history[history["round"] == history["round"].max()]
    earlier = history[history["round"] < history["round"].max()]
    names = list(FACTORS)
    seen = set(map(tuple, earlier[names].itertuples(index=False)))
    assert len(last) == 3 and result.model.chosen_ == "mean"  # pure noise: no model predicts
    assert all(row in seen for row in map(tuple, last[names].itertuples(index=False)))
    means = earlier.groupby(names)["value"].mean().sort_values(ascending=False)
    assert set(map(tuple, last[names].itertuples(index=False))) == set(means.index[:3])


def test_evenly_spaced_numbers_are_suggested_as_numbers():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from qeuopt.run.adaptive import numeric_step

    assert numeric_step([0.35, 0.45, 0.55, 0.65, 0.75]) == 0.1 and numeric_step([20, 30, 40]) == 10
    assert numeric_step([1, 2, 4]) is None and numeric_step(["a", "b", "c"]) is None and numeric_step([1, 2]) is None
    result = optimize(FACTORS, additive, budget=12, strategy="gp", seed=2)
    distributions = result.study.trials[-1].distributions
    assert isinstance(distributions["strength"], FloatDistribution) and distributions["strength"].step == 0.2
    assert isinstance(distributions["steps"], IntDistribution)
    assert isinstance(distributions["style"], CategoricalDistribution)


def test_a_model_that_does_not_predict_is_not_used_to_recommend():
    noise = np.random.default_rng(0).normal(size=200)
    calls = iter(noise)
    result = optimize(FACTORS, lambda c: float(next(calls)), budget=30, strategy="random", seed=1, recommend="model")
    assert result.model.chosen_ == "mean" and "best observed" in result.model.reason_
    assert result.recommended == result.best_observed
