"""PairFactorization: low-rank recovery, unknown keys, str keys, determinism, sklearn checks."""

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from qeuopt.errors import NotFittedError
from qeuopt.model import (
    CVResult,
    PairFactorization,
    cross_validated_rmse,
)


def _low_rank_scores(n_rows=60, n_cols=50, rank=3, density=0.4, noise=0.1, seed=0):
    """Observed (row, col) pairs of a biased rank-`rank` matrix, split train/test.

    The test pairs are unseen pairs whose keys both appear in training.
    """
    rng = np.random.default_rng(seed)
    truth = (
        3.0
        + rng.normal(0, 0.5, (n_rows, 1))
        + rng.normal(0, 0.5, (1, n_cols))
        + rng.normal(0, 1, (n_rows, rank)) @ rng.normal(0, 1, (rank, n_cols))
    )
    rows, cols = np.nonzero(rng.random((n_rows, n_cols)) < density)
    scores = truth[rows, cols] + rng.normal(0, noise, len(rows))
    X = np.column_stack([rows, cols])
    test = rng.random(len(rows)) < 0.2
    return X[~test], scores[~test], X[test], scores[test]


def _rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


def test_recovers_low_rank_matrix_better_than_biases():
    X, y, X_test, y_test = _low_rank_scores()
    factors = PairFactorization(n_factors=3, reg=0.05, n_epochs=30, random_state=0).fit(X, y)
    biases = PairFactorization(n_factors=0, reg=0.05).fit(X, y)
    assert _rmse(factors, X_test, y_test) < 0.5 * _rmse(biases, X_test, y_test)
    assert _rmse(factors, X_test, y_test) < 0.6  # the interaction part has std ~1.7


def test_unknown_keys_fall_back_to_biases_then_global_mean():
    X, y, _, _ = _low_rank_scores()
    model = PairFactorization(n_factors=3, random_state=0).fit(X, y)
    known_row, known_col = X[0]
    col = model.col_index_[known_col]
    row = model.row_index_[known_row]
    pred = model.predict(np.array([[999, known_col], [known_row, 999], [999, 998]]))
    low, high = model.y_range_
    assert pred[0] == pytest.approx(np.clip(model.global_mean_ + model.col_bias_[col], low, high))
    assert pred[1] == pytest.approx(np.clip(model.global_mean_ + model.row_bias_[row], low, high))
    assert pred[2] == pytest.approx(model.global_mean_)


def test_support_is_the_smaller_key_count_and_zero_for_unknown_keys():
    X = np.array([["a", "x"], ["a", "y"], ["a", "z"], ["b", "x"]], dtype=object)
    model = PairFactorization(n_factors=1, random_state=0).fit(X, [1.0, 2.0, 3.0, 4.0])
    support = model.support(np.array([["a", "x"], ["a", "y"], ["b", "z"], ["c", "x"]]))
    np.testing.assert_array_equal(support, [2, 1, 1, 0])


def test_string_keys_give_the_same_model_as_integer_keys():
    X, y, X_test, _ = _low_rank_scores()
    as_text = np.array([[f"artist {r}", f"style {c}"] for r, c in X], dtype=object)
    test_text = np.array([[f"artist {r}", f"style {c}"] for r, c in X_test], dtype=object)
    numeric = PairFactorization(n_factors=3, random_state=0).fit(X, y)
    text = PairFactorization(n_factors=3, random_state=0).fit(as_text, y)
    np.testing.assert_allclose(text.predict(test_text), numeric.predict(X_test))
    assert "artist 0" in text.row_index_  # the key was kept as a str, not coerced


def test_mixed_key_types_and_dataframe_input():
    frame = pd.DataFrame({"rater": ["ann", "bob", "ann", 7], "condition": [1, 2, 2, 1]})
    model = PairFactorization(n_factors=1, random_state=0).fit(frame, [4.0, 2.0, 3.0, 5.0])
    assert model.predict(frame).shape == (4,)
    assert set(model.row_index_) == {"ann", "bob", 7}


def test_extra_columns_form_a_tuple_column_key():
    X = np.array([["ann", "L1", 1], ["ann", "L1", 2], ["bob", "L1", 1]], dtype=object)
    model = PairFactorization(n_factors=1, random_state=0).fit(X, [1.0, 2.0, 3.0])
    assert set(model.col_index_) == {("L1", 1), ("L1", 2)}


def test_same_random_state_gives_identical_predictions():
    X, y, X_test, _ = _low_rank_scores()
    first = PairFactorization(n_factors=3, random_state=7).fit(X, y).predict(X_test)
    second = PairFactorization(n_factors=3, random_state=7).fit(X, y).predict(X_test)
    np.testing.assert_array_equal(first, second)


def test_predictions_are_clipped_to_the_training_range():
    X, y, X_test, _ = _low_rank_scores()
    model = PairFactorization(n_factors=3, random_state=0).fit(X, y)
    pred = model.predict(X_test)
    assert pred.min() >= y.min() and pred.max() <= y.max()


def test_cross_validated_rmse_reports_folds_and_beats_the_mean():
    X, y, _, _ = _low_rank_scores()
    result = cross_validated_rmse(PairFactorization(3, reg=0.05, random_state=0), X, y, cv=5)
    assert isinstance(result, CVResult) and len(result.fold_rmse) == 5
    assert result.rmse == pytest.approx(np.mean(result.fold_rmse))
    assert result.rmse < 0.7 * y.std() and result.fit_seconds >= 0


@pytest.mark.parametrize(
    "params, field",
    [({"n_factors": -1}, "`n_factors`"), ({"reg": 0}, "`reg`"), ({"n_epochs": 0}, "`n_epochs`")],
)
def test_invalid_hyperparameters_name_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        PairFactorization(**params).fit([[0, 0], [1, 1]], [1.0, 2.0])


def test_unfitted_model_raises():
    with pytest.raises(NotFittedError):
        PairFactorization().predict([[0, 0]])


@parametrize_with_checks(
    [PairFactorization(random_state=0), PairFactorization(n_factors=0)],
    # No check is expected to fail. The checks pass numeric X with up to 10 columns;
    # the estimator takes column 0 as the row key and the remaining columns as one
    # (tuple) column key, and declares the `categorical` and `string` input tags, so
    # the checks round X to small integer keys and skip the "strings must be
    # rejected" part of check_dtype_object.
    expected_failed_checks=lambda estimator: {},
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
