"""Bradley-Terry-Davidson: the scikit-learn contract, recovery of known scores, Laplace
interval coverage, and the information-based choice of pairs against random pairs."""

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.utils.estimator_checks import parametrize_with_checks

from qeuopt.model.bradley_terry import BradleyTerry, most_informative_pair, pair_matrix

ORDINAL = (
    "an ordinal model of pairwise choices: at most 3 classes, read in sorted order as (right wins, tie, "
    "left wins); the checks' data need 4 classes or unordered blobs"
)


@parametrize_with_checks(
    [BradleyTerry(), BradleyTerry(alpha=0.5, fit_intercept=False)],
    expected_failed_checks=lambda estimator: {
        "check_classifiers_train": ORDINAL,  # 3 blobs whose middle label is not between the others
        "check_dtype_object": ORDINAL,  # fits y with 4 classes
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def simulate(theta, left, right, rng, nu=0.0, pull=0.0):
    """Choices drawn from the model itself: 1 left wins, -1 right wins, 0 tie."""
    d = theta[left] - theta[right] + pull
    z = np.exp(d / 2) + np.exp(-d / 2) + nu
    u = rng.random(len(d))
    return np.where(u < np.exp(d / 2) / z, 1, np.where(u < (np.exp(d / 2) + np.exp(-d / 2)) / z, -1, 0))


def random_pairs(rng, items, count):
    left = rng.integers(0, items, count)
    return left, (left + rng.integers(1, items, count)) % items


def test_recovers_scores_side_pull_and_ties():
    rng = np.random.default_rng(1)
    theta = np.linspace(-1.5, 1.5, 8)
    left, right = random_pairs(rng, 8, 4000)
    y = simulate(theta, left, right, rng, nu=0.6, pull=0.4)
    model = BradleyTerry(alpha=0.01).fit(pair_matrix(left, right, 8), y)
    centred = model.coef_ - model.coef_.mean()
    assert np.abs(centred - theta).max() < 0.15
    assert abs(model.intercept_ - 0.4) < 0.1 and abs(model.tie_ - 0.6) < 0.1
    assert list(model.classes_) == [-1, 0, 1]
    proba = model.predict_proba(pair_matrix([7, 0], [0, 7], 8))
    assert proba[0, 2] > 0.8 and proba[1, 0] > 0.8 and np.allclose(proba.sum(axis=1), 1)


def test_an_item_never_compared_or_always_winning_has_a_finite_score():
    left, right = [0, 0, 0, 1], [1, 1, 2, 2]
    model = BradleyTerry(alpha=2.0, fit_intercept=False).fit(pair_matrix(left, right, 4), [1, 1, 1, -1])
    assert np.isfinite(model.coef_).all() and model.coef_[0] == model.coef_.max()  # item 0 never lost
    assert model.coef_[3] == 0.0 and np.isclose(model.covariance_[3, 3], 1 / 2.0)  # item 3: the prior


def test_laplace_intervals_cover_about_95_percent():
    """Scores drawn from the prior (sd 1), 30 choices among 6 items: the posterior's 95%
    intervals should hold the true score about 95% of the time (Laplace is approximate)."""
    rng = np.random.default_rng(7)
    hits = []
    for _ in range(150):
        theta = rng.normal(0.0, 1.0, 6)
        left, right = random_pairs(rng, 6, 30)
        model = BradleyTerry(fit_intercept=False).fit(pair_matrix(left, right, 6), simulate(theta, left, right, rng))
        lower, upper = model.intervals(0.95)
        hits.extend((lower <= theta) & (theta <= upper))
    assert 0.92 <= np.mean(hits) <= 0.98, np.mean(hits)


def _order_recovered(choose, seed, items=8, budget=40):
    """Kendall's tau between the fitted and the true scores after ``budget`` choices."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(-2.0, 2.0, items)
    left, right, y = [0, 1], [1, 0], [1, -1]  # one even start, so there are two classes to fit
    for _ in range(budget):
        model = BradleyTerry(fit_intercept=False).fit(pair_matrix(left, right, items), y)
        i, j = choose(model, rng)
        i, j = (j, i) if rng.random() < 0.5 else (i, j)
        left.append(i), right.append(j), y.append(int(simulate(theta, [i], [j], rng)[0]))
    fitted = BradleyTerry(fit_intercept=False).fit(pair_matrix(left, right, items), y)
    return kendalltau(fitted.coef_, theta).statistic


def test_information_based_pairs_recover_a_known_order_better_than_random_pairs():
    def informative(model, rng):
        return most_informative_pair(model, rng=rng)

    def random(model, rng):
        return tuple(rng.choice(len(model.coef_), 2, replace=False))

    chosen = [_order_recovered(informative, seed) for seed in range(24)]
    drawn = [_order_recovered(random, seed) for seed in range(24)]
    assert np.mean(chosen) > np.mean(drawn) + 0.03, (np.mean(chosen), np.mean(drawn))


def test_pair_information_favours_close_uncertain_pairs_and_respects_the_mask():
    left, right = [0, 0, 1, 1, 2, 2] * 5, [1, 2, 0, 2, 0, 1] * 5
    model = BradleyTerry(fit_intercept=False).fit(pair_matrix(left, right, 4), [1, -1] * 15)
    assert 3 in most_informative_pair(model)  # item 3 was never shown: the most to learn
    allowed = np.ones((4, 4), bool)
    allowed[3, :] = allowed[:, 3] = False
    assert 3 not in most_informative_pair(model, allowed)
    assert most_informative_pair(model, np.zeros((4, 4), bool)) is None


@pytest.mark.parametrize(
    "left, right, message", [([0, 1], [1], "one length"), ([0], [0], "two different"), ([0], [5], "0..3")]
)
def test_pair_matrix_rejects_bad_pairs(left, right, message):
    with pytest.raises(ValueError, match=message):
        pair_matrix(left, right, 4)
