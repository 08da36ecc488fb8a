"""Collaborative filtering over key pairs: biased matrix factorization by ALS.

A score for the pair (row key u, column key i) is modelled as
``mu + b_u + c_i + p_u . q_i``. Keys are anything hashable: artist names for two prompt
slots, or (rater, condition). Alternating least squares solves each side exactly (a
ridge regression per key, batched in numpy), so a fit is deterministic given
``random_state`` and needs no learning rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import KFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from qeuopt.model.tmethod import require_fitted

# Outer products of one ALS chunk: keep them near 32 MB of float64.
_CHUNK_ELEMENTS = 4_000_000


def _split_keys(X):
    """Row keys (column 0) and column keys (the other columns) as Python objects.

    ``tolist`` turns numpy scalars into Python ones, so 1, 1.0 and np.int32(1) are
    the same key. Several remaining columns form a tuple key, which lets
    (rater, factor levels...) be passed without joining columns first.
    """
    rows = X[:, 0].tolist()
    if X.shape[1] == 2:
        return rows, X[:, 1].tolist()
    return rows, [tuple(r) for r in X[:, 1:].tolist()]


def _index_keys(keys):
    """Dict key -> code in first-seen order (deterministic for a given X)."""
    return {key: code for code, key in enumerate(dict.fromkeys(keys))}


def _encode(keys, index):
    """Integer codes; -1 for keys not seen in fit."""
    return np.fromiter((index.get(k, -1) for k in keys), dtype=np.intp, count=len(keys))


def _chunk_bounds(counts, rows_per_chunk):
    """Consecutive key groups [first, last) holding about ``rows_per_chunk`` rows."""
    ends = np.cumsum(counts)
    bounds, first = [], 0
    while first < len(counts):
        start = ends[first - 1] if first else 0
        last = int(np.searchsorted(ends, start + rows_per_chunk, side="right"))
        last = max(last, first + 1)  # a key with more rows than a chunk goes alone
        bounds.append((first, last))
        first = last
    return bounds


class _Grouping:
    """Ratings sorted by one side's key, for per-key sums with ``np.add.reduceat``."""

    def __init__(self, codes, n_keys):
        self.order = np.argsort(codes, kind="stable")
        self.counts = np.bincount(codes, minlength=n_keys)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def gram_matrices(self, F):
        """Per key, F_k^T F_k over that key's rows (F already in sorted order)."""
        d = F.shape[1]
        grams = np.empty((len(self.counts), d, d))
        for first, last in _chunk_bounds(self.counts, max(1, _CHUNK_ELEMENTS // d**2)):
            lo = self.starts[first]
            hi = self.starts[last - 1] + self.counts[last - 1]
            outer = F[lo:hi, :, None] * F[lo:hi, None, :]
            grams[first:last] = np.add.reduceat(outer, self.starts[first:last] - lo, axis=0)
        return grams

    def ridge_solve(self, features, target, reg):
        """Per key, argmin_w ||target - features w||^2 + reg * n_key * ||w||^2.

        The penalty grows with the key's count (ALS-WR, Zhou et al. 2008), so one
        ``reg`` suits both rare and frequent keys.
        """
        F, t = features[self.order], target[self.order]
        grams = self.gram_matrices(F)
        grams += (reg * self.counts)[:, None, None] * np.eye(F.shape[1])
        rhs = np.add.reduceat(F * t[:, None], self.starts, axis=0)
        return np.linalg.solve(grams, rhs[..., None])[..., 0]


def _with_bias_column(factors, codes):
    """Features [factors of the other side, 1]: the trailing 1 fits this side's bias."""
    return np.hstack([factors[codes], np.ones((len(codes), 1))])


class PairFactorization(RegressorMixin, BaseEstimator):
    """Biased matrix factorization of scores indexed by (row key, column key).

    Parameters
    ----------
    n_factors : int, default=10
        Latent dimensions; 0 gives the biases-only baseline ``mu + b_u + c_i``.
    reg : float, default=0.1
        Ridge penalty per observation (the penalty on a key is ``reg * its count``),
        applied to factors and biases alike. Must be > 0.
    n_epochs : int, default=15
        ALS sweeps (rows then columns).
    random_state : int, RandomState or None
        Seeds the initial column factors; the rest of the fit is deterministic.

    ``X`` is an (n, 2) array-like of keys: column 0 is the row key, column 1 the column
    key. Keys may be str or numbers (they are kept as Python objects, never coerced to
    float). With more than 2 columns, columns 1.. together form a tuple column key; with
    1 column there is a single column key, which reduces the model to row biases.

    Attributes
    ----------
    global_mean_ : float
    row_index_, col_index_ : dict
        Key -> position in the arrays below.
    row_bias_, col_bias_ : ndarray
    row_factors_, col_factors_ : ndarray (n_keys, n_factors)
    row_counts_, col_counts_ : ndarray
        Training observations per key; see :meth:`support`.
    y_range_ : tuple
        (min, max) of the training scores; predictions are clipped to it.
    """

    def __init__(self, n_factors=10, reg=0.1, n_epochs=15, random_state=None):
        self.n_factors = n_factors
        self.reg = reg
        self.n_epochs = n_epochs
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # keys may be strings
        tags.input_tags.categorical = True  # keys are categories, not magnitudes
        return tags

    def _check_hyperparameters(self):
        problems = []
        if not (isinstance(self.n_factors, (int, np.integer)) and self.n_factors >= 0):
            problems.append(f"`n_factors` must be an int >= 0; got {self.n_factors!r}.")
        if not (isinstance(self.n_epochs, (int, np.integer)) and self.n_epochs >= 1):
            problems.append(f"`n_epochs` must be an int >= 1; got {self.n_epochs!r}.")
        if not (isinstance(self.reg, (int, float, np.number)) and self.reg > 0):
            problems.append(f"`reg` must be a number > 0 (it keeps each solve regular); "
                            f"got {self.reg!r}.")
        if problems:
            raise ValueError(" ".join(problems))

    def _codes(self, X):
        """Validate X (keeping str keys as objects); row and column codes, -1 = unseen."""
        X = validate_data(self, X, dtype=None, reset=False)
        rows, cols = _split_keys(np.asarray(X, dtype=object))
        return _encode(rows, self.row_index_), _encode(cols, self.col_index_)

    def fit(self, X, y):
        """Fit biases and factors to the scores ``y`` of the key pairs in ``X``."""
        self._check_hyperparameters()
        X, y = validate_data(self, X, y, dtype=None, y_numeric=True)
        y = y.astype(float)
        row_keys, col_keys = _split_keys(np.asarray(X, dtype=object))
        self.row_index_, self.col_index_ = _index_keys(row_keys), _index_keys(col_keys)
        rows, cols = _encode(row_keys, self.row_index_), _encode(col_keys, self.col_index_)
        self.global_mean_ = float(y.mean())
        self.y_range_ = (float(y.min()), float(y.max()))
        self.row_counts_ = np.bincount(rows, minlength=len(self.row_index_))
        self.col_counts_ = np.bincount(cols, minlength=len(self.col_index_))
        self._alternate(rows, cols, y - self.global_mean_)
        return self

    def _alternate(self, rows, cols, residual):
        """ALS: solve every row key's [factors, bias], then every column key's."""
        rng = check_random_state(self.random_state)
        by_row = _Grouping(rows, len(self.row_index_))
        by_col = _Grouping(cols, len(self.col_index_))
        col_factors = rng.normal(0.0, 0.1, (len(self.col_index_), self.n_factors))
        col_bias = np.zeros(len(self.col_index_))
        for _ in range(self.n_epochs):
            solved = by_row.ridge_solve(
                _with_bias_column(col_factors, cols), residual - col_bias[cols], self.reg
            )
            row_factors, row_bias = solved[:, :-1], solved[:, -1]
            solved = by_col.ridge_solve(
                _with_bias_column(row_factors, rows), residual - row_bias[rows], self.reg
            )
            col_factors, col_bias = solved[:, :-1], solved[:, -1]
        self.row_factors_, self.row_bias_ = row_factors, row_bias
        self.col_factors_, self.col_bias_ = col_factors, col_bias

    def predict(self, X):
        """Scores for key pairs; unknown keys contribute no bias and no factors.

        So an unseen pair of known keys gets the full model, a pair with one unknown
        key gets ``mu + bias of the known key``, and two unknown keys get ``mu``.
        """
        require_fitted(self, "global_mean_")
        rows, cols = self._codes(X)
        # Code -1 (unknown) indexes the zero row appended at the end of each array.
        row_f = np.vstack([self.row_factors_, np.zeros(self.n_factors)])
        col_f = np.vstack([self.col_factors_, np.zeros(self.n_factors)])
        score = (
            self.global_mean_
            + np.append(self.row_bias_, 0.0)[rows]
            + np.append(self.col_bias_, 0.0)[cols]
            + np.einsum("ij,ij->i", row_f[rows], col_f[cols])
        )
        # Scores outside the training range (e.g. above 5 stars) are never closer.
        return np.clip(score, *self.y_range_)

    def support(self, X):
        """Per pair, min(training count of its row key, of its column key); 0 if unseen."""
        require_fitted(self, "global_mean_")
        rows, cols = self._codes(X)
        return np.minimum(np.append(self.row_counts_, 0)[rows],
                          np.append(self.col_counts_, 0)[cols])


@dataclass(frozen=True)
class CVResult:
    """Cross-validated RMSE: mean and std over folds, per-fold values, mean fit time."""

    rmse: float
    rmse_std: float
    fold_rmse: tuple
    fit_seconds: float


def cross_validated_rmse(estimator, X, y, cv=5, random_state=0):
    """K-fold (shuffled) RMSE of a clone of ``estimator`` fitted on each training part.

    Keys that appear only in a test fold exercise the unknown-key fallback, as new
    artists or raters would in use.
    """
    X = X.to_numpy(dtype=object) if hasattr(X, "to_numpy") else np.asarray(X, dtype=object)
    y = np.asarray(y, dtype=float)
    errors, seconds = [], []
    for train, test in KFold(cv, shuffle=True, random_state=random_state).split(X):
        model = clone(estimator)
        start = time.perf_counter()
        model.fit(X[train], y[train])
        seconds.append(time.perf_counter() - start)
        errors.append(float(np.sqrt(np.mean((model.predict(X[test]) - y[test]) ** 2))))
    return CVResult(float(np.mean(errors)), float(np.std(errors)), tuple(errors),
                    float(np.mean(seconds)))
