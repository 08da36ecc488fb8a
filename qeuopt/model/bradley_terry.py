"""Bradley-Terry with Davidson's ties: pairwise choices become per-item scores with intervals.

Each item j has a score ``theta_j`` (a log strength). For a pair shown as (left, right),
with ``d = theta_left - theta_right + b`` (``b``: a pull towards the left side, because
people favour one side; fitted when ``fit_intercept``) and ``nu`` the tie parameter,

    P(left) = e^(d/2) / Z,  P(right) = e^(-d/2) / Z,  P(tie) = nu / Z,  Z = e^(d/2) + e^(-d/2) + nu

(Davidson 1970: a tie is more likely between equals). Without ties in the data ``nu`` is 0
and this is the plain Bradley-Terry model ``P(left) = sigmoid(d)``.

Scikit-learn's form: ``X`` is the pairs difference-coded, one row per choice with +1 in the
left item's column and -1 in the right one's (:func:`pair_matrix`), so ``d = X @ coef_ +
intercept_`` and the model is an ordinal classifier of ``y`` in (-1, 0, 1) = (right wins,
tie, left wins); two classes mean no ties. Any labels work: sorted, they are read in that
order. A Gaussian prior ``theta ~ N(0, 1/alpha)`` (ridge) keeps every score finite, also for
an item never compared (it stays at the prior, 0 +- 1/sqrt(alpha)) or one that always
wins. The fit is Newton's method on the penalized log-likelihood, which is concave; the
intervals are Laplace's: the inverse Hessian at the optimum is the scores' covariance.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from qeuopt.model.tmethod import require_fitted

WEAK_PRIOR = 1e-2  # precision of the prior on the side pull and on log(nu): finite when data are one-sided


def pair_matrix(left, right, n_items: int) -> np.ndarray:
    """The difference coding of pairs of item indices: the ``X`` of :class:`BradleyTerry`."""
    left, right = np.asarray(left, dtype=int), np.asarray(right, dtype=int)
    if left.shape != right.shape or left.ndim != 1:
        raise ValueError(
            f"`left`, `right`: two 1-d index arrays of one length are expected; "
            f"given shapes {left.shape} and {right.shape}"
        )
    if len(left) and (
        min(left.min(), right.min()) < 0 or max(left.max(), right.max()) >= n_items or (left == right).any()
    ):
        raise ValueError(f"`left`, `right`: indices of two different items in 0..{n_items - 1} are expected")
    X = np.zeros((len(left), n_items))
    rows = np.arange(len(left))
    X[rows, left], X[rows, right] = 1.0, -1.0
    return X


def _outcome_probabilities(d: np.ndarray, log_nu: float | None):
    """(P(left), P(right), P(tie)) for linear predictors ``d``; stable for large |d|."""
    half = d / 2
    log_z = np.logaddexp(half, -half)
    if log_nu is None:
        return expit(d), expit(-d), np.zeros_like(d)
    log_z = np.logaddexp(log_z, log_nu)
    return np.exp(half - log_z), np.exp(-half - log_z), np.exp(log_nu - log_z)


def fisher_weight(d: np.ndarray, log_nu: float | None) -> np.ndarray:
    """Information one choice carries about ``d``: the variance of its outcome (+1/2, 0, -1/2)."""
    p_left, p_right, _ = _outcome_probabilities(d, log_nu)
    return (p_left + p_right - (p_left - p_right) ** 2) / 4


class BradleyTerry(ClassifierMixin, BaseEstimator):
    """Bradley-Terry-Davidson model of pairwise choices (see the module docstring).

    Parameters: ``alpha`` the prior precision of the scores (1: a score's prior sd is one
    logit, i.e. e:1 odds against an average item); ``fit_intercept`` fits the side pull;
    ``max_iter``/``tol`` stop Newton's method.

    Attributes: ``coef_`` the item scores, ``covariance_`` their Laplace covariance,
    ``intercept_`` the side pull, ``tie_`` Davidson's nu (0 without ties), ``classes_``,
    ``n_iter_``, ``n_features_in_``.
    """

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True, max_iter: int = 100, tol: float = 1e-8):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise ValueError(f"`alpha`: a positive number is allowed; given {self.alpha!r}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) not in (2, 3):
            raise ValueError(
                f"`y`: 2 classes (right wins, left wins) or 3 (right, tie, left) are allowed; "
                f"given {len(self.classes_)} class(es)"
            )
        ties = len(self.classes_) == 3
        sign = (np.array([-1.0, 0.0, 1.0]) if ties else np.array([-1.0, 1.0]))[codes]
        Z = np.column_stack([X, np.ones(len(X))]) if self.fit_intercept else X
        n = X.shape[1]
        precision = np.r_[np.full(n, float(self.alpha)), np.full(Z.shape[1] - n + ties, WEAK_PRIOR)]
        params, hessian, self.n_iter_ = self._newton(Z, sign, ties, precision)
        self.coef_ = params[:n]
        self.intercept_ = float(params[n]) if self.fit_intercept else 0.0
        self.tie_ = float(np.exp(params[-1])) if ties else 0.0
        self.covariance_ = np.linalg.inv(hessian)[:n, :n]
        return self

    # -- the optimisation ------------------------------------------------------------------
    @staticmethod
    def _objective(Z, sign, ties, precision, params):
        """Negative penalized log-likelihood, its gradient and Hessian."""
        beta, log_nu = (params[:-1], params[-1]) if ties else (params, None)
        d = Z @ beta
        p_left, p_right, p_tie = _outcome_probabilities(d, log_nu)
        chosen = np.where(sign > 0, p_left, np.where(sign < 0, p_right, p_tie))
        value = -np.log(np.maximum(chosen, 1e-300)).sum() + 0.5 * (precision * params**2).sum()
        delta = p_left - p_right
        grad_d = -(sign - delta) / 2
        weight_d = (p_left + p_right - delta**2) / 4
        gradient = Z.T @ grad_d
        hessian = Z.T @ (weight_d[:, None] * Z)
        if ties:
            cross = Z.T @ (-delta * p_tie / 2)
            gradient = np.r_[gradient, -((sign == 0) - p_tie).sum()]
            hessian = np.block([[hessian, cross[:, None]], [cross[None, :], np.array([[(p_tie * (1 - p_tie)).sum()]])]])
        gradient = gradient + precision * params
        hessian = hessian + np.diag(precision)
        return value, gradient, hessian

    def _newton(self, Z, sign, ties, precision):
        params = np.zeros(len(precision))
        value, gradient, hessian = self._objective(Z, sign, ties, precision, params)
        iteration = 0
        while iteration < self.max_iter:
            iteration += 1
            step = np.linalg.solve(hessian, gradient)
            scale = 1.0
            while True:  # halve until the objective falls: Newton can overshoot far from the optimum
                trial = params - scale * step
                new = self._objective(Z, sign, ties, precision, trial)
                if new[0] <= value + 1e-12 or scale < 1e-8:
                    break
                scale /= 2
            params, (value, gradient, hessian) = trial, new
            if np.max(np.abs(scale * step)) < self.tol:
                break
        return params, hessian, iteration

    # -- predictions -----------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of the classes (``classes_`` order: right, [tie,] left) for each pair."""
        require_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        p_left, p_right, p_tie = _outcome_probabilities(X @ self.coef_ + self.intercept_, self._log_nu())
        columns = (p_right, p_tie, p_left) if len(self.classes_) == 3 else (p_right, p_left)
        return np.column_stack(columns)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # first: it raises when not fitted
        return self.classes_[np.argmax(proba, axis=1)]

    def _log_nu(self) -> float | None:
        return float(np.log(self.tie_)) if len(self.classes_) == 3 else None

    def intervals(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) per item: Laplace's normal approximation of each score."""
        from scipy.stats import norm  # here: scipy.stats takes a while to import

        require_fitted(self, "coef_")
        if not 0 < level < 1:
            raise ValueError(f"`level`: a probability in (0, 1) is allowed; given {level!r}")
        half = norm.ppf(0.5 + level / 2) * np.sqrt(np.diag(self.covariance_))
        return self.coef_ - half, self.coef_ + half

    def pair_information(self) -> np.ndarray:
        """Expected information gain of judging each pair (i, j) next, items x items.

        One more choice of (i, j) adds ``w x x^T`` to the Hessian, with ``x = e_i - e_j`` and
        ``w`` its Fisher weight (largest for close pairs), so the log-determinant of the
        posterior precision grows by ``log(1 + w Var(theta_i - theta_j))``: D-optimal
        design, the entropy the posterior loses. It favours pairs that are uncertain and
        close. The side pull is left out: the page shows each pair in a random order."""
        require_fitted(self, "coef_")
        theta, cov = self.coef_, self.covariance_
        variance = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
        weight = fisher_weight(theta[:, None] - theta[None, :], self._log_nu())
        gain = np.log1p(weight * np.maximum(variance, 0.0))
        np.fill_diagonal(gain, -np.inf)
        return gain


def most_informative_pair(
    model: BradleyTerry, allowed: np.ndarray | None = None, rng: np.random.Generator | None = None
) -> tuple[int, int] | None:
    """The pair (i < j) with the largest :meth:`BradleyTerry.pair_information`; equal gains are
    broken at random. ``allowed`` (items x items, boolean) masks pairs out; None when none is left."""
    gain = model.pair_information()
    if allowed is not None:
        gain = np.where(allowed & allowed.T, gain, -np.inf)
    gain = np.triu(gain, 1) + np.tril(np.full_like(gain, -np.inf))
    best = gain.max(initial=-np.inf)
    if not np.isfinite(best):
        return None
    candidates = np.argwhere(gain >= best - 1e-12)
    i, j = candidates[(rng or np.random.default_rng()).integers(len(candidates))]
    return int(i), int(j)
