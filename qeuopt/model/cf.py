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
from threadpoolctl import threadpool_limits

from qeuopt.errors import InputError
from qeuopt.model.tmethod import require_fitted


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


class _Side:
    """The ratings seen from one side (rows or columns), sorted by that side's key.

    Each key's ratings are then one contiguous slice, so its normal equations come
    from one BLAS product instead of a scatter over ratings.
    """

    def __init__(self, codes, n_keys, other_codes, residual):
        order = np.argsort(codes, kind="stable")
        self.counts = np.bincount(codes, minlength=n_keys)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.other_codes = other_codes[order]
        self.residual = residual[order]

    def solve(self, other_factors, other_bias, reg):
        """[factors, bias] of every key with the other side held fixed (ridge).

        Minimizes ||target - [q, 1] w||^2 + reg * n_key * ||w||^2 per key, where the
        target is the residual minus the other side's bias. The penalty grows with the
        key's count (ALS-WR, Zhou et al. 2008), so one ``reg`` suits rare and frequent
        keys. Appending the target as a last column makes one product per key give
        both the Gram matrix and the right-hand side.
        """
        k = other_factors.shape[1]
        A = np.empty((len(self.other_codes), k + 2))
        A[:, :k] = other_factors[self.other_codes]
        A[:, k] = 1.0  # the column that fits this side's bias
        A[:, k + 1] = self.residual - other_bias[self.other_codes]
        ends = self.starts + self.counts
        G = np.stack([A[lo:hi].T @ A[lo:hi] for lo, hi in zip(self.starts, ends)])
        lhs = G[:, : k + 1, : k + 1] + (reg * self.counts)[:, None, None] * np.eye(k + 1)
        return np.linalg.solve(lhs, G[:, : k + 1, k + 1 :])[..., 0]


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
        """All problems in one message, in fit (sklearn: __init__ only stores)."""
        problems = []
        if not (isinstance(self.n_factors, (int, np.integer)) and self.n_factors >= 0):
            problems.append(f"`n_factors` must be an int >= 0; got {self.n_factors!r}.")
        if not (isinstance(self.n_epochs, (int, np.integer)) and self.n_epochs >= 1):
            problems.append(f"`n_epochs` must be an int >= 1; got {self.n_epochs!r}.")
        if not (isinstance(self.reg, (int, float, np.number)) and self.reg > 0):
            problems.append(f"`reg` must be a number > 0 (it keeps each solve regular); got {self.reg!r}.")
        if problems:
            raise InputError(" ".join(problems))

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
        # The per-key systems are tiny; BLAS threads only add synchronisation (with
        # numpy 1.26's OpenBLAS a 30-factor fit on 100k ratings took 18 s, not 1.8 s).
        with threadpool_limits(limits=1, user_api="blas"):
            self._alternate(rows, cols, y - self.global_mean_)
        return self

    def _alternate(self, rows, cols, residual):
        """ALS: solve every row key's [factors, bias], then every column key's."""
        rng = check_random_state(self.random_state)
        n_rows, n_cols = len(self.row_index_), len(self.col_index_)
        row_side = _Side(rows, n_rows, cols, residual)
        col_side = _Side(cols, n_cols, rows, residual)
        col_factors = rng.normal(0.0, 0.1, (n_cols, self.n_factors))
        col_bias = np.zeros(n_cols)
        for _ in range(self.n_epochs):
            solved = row_side.solve(col_factors, col_bias, self.reg)
            row_factors, row_bias = solved[:, :-1], solved[:, -1]
            solved = col_side.solve(row_factors, row_bias, self.reg)
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
        zeros = np.zeros((1, self.row_factors_.shape[1]))
        row_f, col_f = np.vstack([self.row_factors_, zeros]), np.vstack([self.col_factors_, zeros])
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
        return np.minimum(np.append(self.row_counts_, 0)[rows], np.append(self.col_counts_, 0)[cols])


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
    return CVResult(float(np.mean(errors)), float(np.std(errors)), tuple(errors), float(np.mean(seconds)))
