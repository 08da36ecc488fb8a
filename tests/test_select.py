import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from qeuopt.errors import NotFittedError
from qeuopt.model.levelgp import LevelGP, ResidualGP
from qeuopt.model.select import ConditionMeans, ModelSelector

ARTISTS_A, ARTISTS_B = [f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]
STRENGTHS = [0.3, 0.5, 0.7]


def _study(pair_size: float, noise: float = 0.3, seed: int = 0):
    """Every artist pair at every strength (108 conditions): biases + a rank-1 pair term."""
    rng = np.random.default_rng(seed)
    rows = [{"style_a": a, "style_b": b, "strength": s} for a in ARTISTS_A for b in ARTISTS_B for s in STRENGTHS]
    X = pd.DataFrame(rows, dtype=object)
    bias_a, bias_b, u, v = (rng.normal(0, 1, 6) for _ in range(4))
    ia, ib = X["style_a"].map(ARTISTS_A.index).to_numpy(int), X["style_b"].map(ARTISTS_B.index).to_numpy(int)
    strength = X["strength"].to_numpy(float)
    y = bias_a[ia] + bias_b[ib] - 4 * (strength - 0.5) ** 2 + pair_size * u[ia] * v[ib]
    return X, y + noise * rng.standard_normal(len(y))


def test_additive_is_chosen_when_the_pair_term_is_noise():
    X, y = _study(pair_size=0.0)
    model = ModelSelector(levels={"strength": STRENGTHS}).fit(X, y)
    assert model.chosen_ == "additive"
    assert model.cv_rmse_["additive"] < model.cv_rmse_["mean"]
    assert "additive" in model.reason_ and "cross-validated RMSE" in model.reason_


def test_pair_is_chosen_for_a_strong_pair_interaction():
    X, y = _study(pair_size=1.5)
    model = ModelSelector().fit(X, y)
    assert model.chosen_ == "pair"
    assert model.cv_rmse_["pair"] < model.cv_rmse_["additive"] - model.cv_se_["additive"]


def test_no_model_when_scores_are_pure_noise_and_the_best_observed_ranks_first():
    X, _ = _study(pair_size=0.0)
    y = np.random.default_rng(5).normal(0, 1, len(X))
    model = ModelSelector().fit(X, y)
    assert model.chosen_ == "mean" and "best observed" in model.reason_
    assert int(np.argmax(model.predict(X))) == int(np.argmax(y))  # one observation per condition


def test_too_few_conditions_fall_back_to_the_observed_means():
    X, y = _study(pair_size=0.0)
    model = ModelSelector().fit(X.iloc[:3], y[:3])
    assert model.chosen_ == "mean" and "too few" in model.reason_


def test_intervals_cover_the_prediction_and_widen_for_untried_levels():
    X, y = _study(pair_size=0.0)
    seen = X["style_a"] != "a5"
    model = ModelSelector(candidates=("additive",), levels={"style_a": ARTISTS_A}).fit(X[seen], y[seen.to_numpy()])
    lower, upper = model.predict_interval(X, level=0.9)
    predicted = model.predict(X)
    assert np.all(lower < predicted) and np.all(predicted < upper)
    width = upper - lower
    assert width[~seen.to_numpy()].min() > width[seen.to_numpy()].max()
    with pytest.raises(ValueError, match="`level`"):
        model.predict_interval(X, level=1.5)


def test_level_gp_learns_an_interaction_the_additive_model_cannot():
    X, _ = _study(pair_size=0.0)
    strength = X["strength"].to_numpy(float)
    y = np.where(X["style_a"].isin(ARTISTS_A[:3]), strength, -strength)  # artist x strength
    model = ModelSelector(candidates=("mean", "additive", "gp")).fit(X, y)
    assert model.chosen_ == "gp"
    assert np.abs(LevelGP().fit(X, y).predict(X) - y).max() < 0.1


def test_residual_gp_lets_an_observed_interaction_outrank_the_additive_pick():
    import itertools

    from qeuopt.model.setting import SettingModel

    cells = list(itertools.product(["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"]))
    X = pd.DataFrame(cells * 2, columns=["a", "b"], dtype=object)
    y = np.array([int(a[1]) + int(b[1]) + (8.0 if (a, b) == ("a0", "b0") else 0.0) for a, b in cells * 2])
    y = y + np.random.default_rng(0).normal(0, 0.1, len(y))
    base = SettingModel(pair=None).fit(X, y)
    grid = pd.DataFrame(cells, columns=["a", "b"], dtype=object)
    assert cells[int(np.argmax(base.predict(grid)))] == ("a3", "b3")  # the main effects alone miss it
    corrected = ResidualGP(base).fit(X, y)
    assert cells[int(np.argmax(corrected.predict(grid)))] == ("a0", "b0")
    assert corrected.predict(grid)[0] > 6.5  # near its observed mean (8), far above the model's
    additive = np.array([int(a[1]) + int(b[1]) for a, b in cells]) + 0.0
    flat = ResidualGP(SettingModel(pair=None).fit(X.iloc[:16], additive)).fit(X.iloc[:16], additive)
    assert np.abs(flat.predict(grid) - additive).max() < 0.05  # nothing left over: the model stands


def test_condition_means_and_contract():
    query = pd.DataFrame({"a": ["x", "y", "z"]})
    raw = ConditionMeans().fit(pd.DataFrame({"a": ["x", "y"]}, dtype=object), [2.0, 5.0])
    assert raw.predict(query).tolist() == [2.0, 5.0, 3.5]  # no replicates: what was observed
    X = pd.DataFrame({"a": ["x", "x", "y"]}, dtype=object)
    means = ConditionMeans().fit(X, [1.0, 3.0, 5.0])
    # replicates measure the noise (variance 2): tau^2 = var(means) 2.25 - mean noise 1.5 = 0.75
    assert means.predict(query) == pytest.approx([3 - 0.75 / 1.75, 3 + 2 * 0.75 / 2.75, 3.0])
    selector = ModelSelector(n_splits=3)
    assert clone(selector).get_params()["n_splits"] == 3
    with pytest.raises(NotFittedError):
        selector.predict(X)
    with pytest.raises(ValueError, match="`candidates`"):
        ModelSelector(candidates=("tree",)).fit(X, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`y`"):
        ModelSelector().fit(X, [1.0, np.nan, 3.0])
