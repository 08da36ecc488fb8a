"""Taguchi's T-method (T1, Ta, Tb, T2) as a scikit-learn regressor, numpy only.

Reference implementation: the R package MTSYS (Okayama, github.com/okayaa/MTSYS:
``general_T``, ``T1``, ``Ta``, ``Tb``; Tb after Inou et al. 2012). Items j are the
columns of X. Every item gets an origin ``(x0_j, y0_j)``; with ``X = x - x0_j`` and
``M = y - y0_j`` over the ``l`` signal rows,

    r = sum M^2,  L = sum M X,  beta = L / r,  S_T = sum X^2,  S_beta = L^2 / r,
    S_e = S_T - S_beta,  V_e = S_e / (l - 1)

and an SN ratio ``eta`` (rule ``sn``). Each item alone estimates ``y`` as
``(x_j - x0_j) / beta_j + y0_j``; the integrated estimate is their eta-weighted mean,
i.e. ``M_hat = sum_j eta_j X_j / beta_j / sum_j eta_j`` plus ``M0 = sum_j eta_j y0_j /
sum_j eta_j``. T1, Ta and T2 give all items one origin (so ``M0`` is the common y
origin); Tb gives each item its own.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import validate_data

from qeuopt.errors import InputError, NotFittedError

VARIANTS = ("t1", "ta", "tb", "t2")
SN_RULES = ("t1", "no_ve", "ratio")
# Rounding can leave S_e a hair below zero, and a perfectly linear item has S_e == 0.
# Flooring S_e at this fraction of S_T keeps every eta finite: a perfect item gets a huge
# but finite weight instead of inf (which would turn the weighted mean into NaN).
_RELATIVE_SE_FLOOR = 1e-12
# item_gains: a row whose estimate shows no signal (eta = 0, i.e. -inf dB) counts this
# many dB below the worst row that had a signal, so means stay finite.
NO_SIGNAL_MARGIN_DB = 10.0
# Smallest standard two-level array for a number of items (level 1 = item used).
_TWO_LEVEL_ARRAYS = (("L4", 3), ("L8", 7), ("L12", 11), ("L16", 15), ("L32", 31), ("L64", 63))


def require_fitted(estimator, attribute):
    """Raise :class:`qeuopt.errors.NotFittedError` unless ``fit`` has set ``attribute``."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"This {type(estimator).__name__} is not fitted yet; call `fit` first.")


def item_sn_ratio(r, L, S_T, n_signal, rule):
    """Return ``(beta, eta)`` for sums ``r, L, S_T`` over ``n_signal`` signal rows.

    Broadcasts, so one call serves every item (or every candidate origin in Tb).
    An item with ``S_beta == 0`` (beta 0, or a constant item with ``S_T == 0``) gets
    eta 0: it carries no information about y, so it must get no weight, and 0 (not
    NaN) keeps the integrated estimate defined.
    """
    r, L, S_T = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (r, L, S_T)))
    safe_r = np.where(r > 0, r, 1.0)  # r == 0 only when y is constant: no signal at all
    beta = np.where(r > 0, L / safe_r, 0.0)
    S_beta = np.where(r > 0, L**2 / safe_r, 0.0)
    S_e = np.maximum(S_T - S_beta, _RELATIVE_SE_FLOOR * S_T)
    has_signal = (S_beta > 0) & (S_e > 0)
    S_e = np.where(has_signal, S_e, 1.0)  # placeholder, masked out below
    V_e = S_e / max(n_signal - 1, 1)
    if rule == "ratio":
        eta = S_beta / S_e
    elif rule == "no_ve":
        eta = S_beta / (safe_r * V_e)
    else:  # "t1": unbiased estimate of beta^2 / sigma^2, clipped at 0
        eta = np.clip((S_beta - V_e) / (safe_r * V_e), 0.0, None)
    return beta, np.where(has_signal, eta, 0.0)


def to_db(eta):
    """SN ratio in decibels; eta 0 (no detectable signal) is ``-inf``, never NaN."""
    eta = np.asarray(eta, dtype=float)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.where(eta > 0, eta, 0.0))


def _tb_origins(X, y, rule):
    """Per item, the first row whose ``(x_ij, y_i)`` as origin maximizes the item's eta.

    As MTSYS's ``generates_transformation_functions_Tb``: each row i in turn is the
    origin of a fit on all n rows (row i adds 0 to the sums but counts in ``l = n``),
    with the fit's own SN rule. Centred sums cost O(n p) for all n candidates:
    ``sum_k (y_k - y_i)(x_k - x_i) = Sxy + n (ybar - y_i)(xbar - x_i)``.
    """
    n = len(y)
    dy = y.mean() - y  # (n,)
    dx = X.mean(axis=0) - X  # (n, p)
    r = np.sum((y - y.mean()) ** 2) + n * dy**2
    L = ((y - y.mean()) @ (X - X.mean(axis=0))) + n * dy[:, None] * dx
    S_T = np.sum((X - X.mean(axis=0)) ** 2, axis=0) + n * dx**2
    _, eta = item_sn_ratio(r[:, None], L, S_T, n, rule)
    return np.argmax(eta, axis=0)  # first row wins ties, as R's which.max


class TMethodRegressor(RegressorMixin, BaseEstimator):
    """Taguchi T-method regressor.

    Parameters
    ----------
    variant : {"t1", "ta", "tb", "t2"}
        "t1": the unit space (``unit_mask``) sets the origin, the other rows are the
        signal data. "t2": the same computation, for a unit space at one end of the
        output; only the default ``sn`` differs. "ta": every row is both unit space
        (origin = column means) and signal data. "tb": each item j gets as origin the
        row ``i`` whose ``(x_ij, y_i)`` maximizes that item's ``S_beta / S_e``; the
        origin for y is that same row's y, so each item is a line through one observed
        point, and the signal data are the other ``n - 1`` rows.
    sn : {"t1", "no_ve", "ratio"} or None
        SN-ratio rule used for item weights and the overall SN ratio:
        "t1" = ``(S_beta - V_e) / (r V_e)`` clipped at 0, "no_ve" = ``S_beta / (r V_e)``,
        "ratio" = ``S_beta / S_e``. None: "ratio" for t2, "t1" otherwise.

    Attributes
    ----------
    beta_, eta_ : ndarray (n_features,)
        Per-item slope and SN ratio (linear, not dB). Items with no signal have eta 0.
    x_origin_, y_origin_ : ndarray (n_features,)
        Per-item origins (equal across items except for Tb).
    y_center_ : float
        ``M0``: unit-space mean of y (t1, t2), mean of y (ta), eta-weighted mean of the
        y origins (tb; mean of y if all eta are 0, where MTSYS's 0/0 is undefined). The
        prediction when no item has eta > 0, and the origin of the overall SN ratio.
    origin_index_ : ndarray (n_features,)
        Tb only: the training row chosen as each item's origin.
    sn_rule_ : str
        The SN rule in use after resolving ``sn=None``.
    n_signal_ : int
        Number of signal rows ``l`` (n for Ta and Tb).
    overall_sn_db_ : float
        SN ratio in dB of the integrated estimate against the true y on the training
        signal data (``-inf`` when it shows no signal under the "t1" rule).
    """

    def __init__(self, variant="t1", sn=None):
        self.variant = variant
        self.sn = sn

    def _resolved_rule(self):
        """Validate ``variant`` and ``sn`` (in fit, not __init__) and resolve sn=None."""
        if self.variant not in VARIANTS:
            raise InputError(f"`variant` must be one of {VARIANTS}; got {self.variant!r}.")
        if self.sn is None:
            return "ratio" if self.variant == "t2" else "t1"
        if self.sn not in SN_RULES:
            raise InputError(f"`sn` must be one of {SN_RULES} or None; got {self.sn!r}.")
        return self.sn

    def _signal_rows(self, n_samples, unit_mask, n_min_signal=2):
        """Boolean mask of the signal rows, validating ``unit_mask`` for the variant."""
        if self.variant in ("ta", "tb"):
            if unit_mask is not None:
                raise InputError(
                    f"`unit_mask` is only used by variants 't1' and 't2'; variant "
                    f"{self.variant!r} takes every row as unit space. Pass unit_mask=None."
                )
            return np.ones(n_samples, dtype=bool)
        if unit_mask is None:
            raise InputError(
                f"variant {self.variant!r} needs `unit_mask` (a boolean array, True = "
                "unit-space row); none was given. Use variant='ta' to take every row as "
                "unit space."
            )
        mask = np.asarray(unit_mask)
        if mask.dtype != bool or mask.shape != (n_samples,):
            raise InputError(
                f"`unit_mask` must be a boolean array of shape ({n_samples},); got dtype "
                f"{mask.dtype} and shape {mask.shape}."
            )
        if mask.sum() < 1 or (~mask).sum() < n_min_signal:
            raise InputError(
                f"`unit_mask` must mark at least 1 unit-space row and leave at least "
                f"{n_min_signal} signal rows; got {int(mask.sum())} and {int((~mask).sum())}."
            )
        return ~mask

    def _set_origins(self, X, y, signal):
        """Per-item origins, the common y origin and l, as the variant defines them."""
        if self.variant == "tb":
            self.origin_index_ = _tb_origins(X, y, self.sn_rule_)
            self.x_origin_ = X[self.origin_index_, np.arange(X.shape[1])]
            self.y_origin_ = y[self.origin_index_]
            self.y_center_ = float(y.mean())  # until fit knows eta (see y_center_)
            self.n_signal_ = len(y)
            return
        unit = ~signal if self.variant in ("t1", "t2") else signal
        self.x_origin_ = X[unit].mean(axis=0)
        self.y_center_ = float(y[unit].mean())
        self.y_origin_ = np.full(X.shape[1], self.y_center_)
        self.n_signal_ = int(signal.sum())

    def fit(self, X, y, unit_mask=None):
        """Fit items on the signal rows; ``unit_mask`` (True = unit space) for t1, t2."""
        rule = self._resolved_rule()
        X, y = validate_data(self, X, y, y_numeric=True, ensure_min_samples=3)
        X, y = X.astype(float), y.astype(float)
        signal = self._signal_rows(len(y), unit_mask)
        self.sn_rule_ = rule
        self._set_origins(X, y, signal)
        Xn = X[signal] - self.x_origin_
        M = y[signal][:, None] - self.y_origin_  # (l, p): one column per item origin
        r, L, S_T = np.sum(M**2, axis=0), np.sum(M * Xn, axis=0), np.sum(Xn**2, axis=0)
        self.beta_, self.eta_ = item_sn_ratio(r, L, S_T, self.n_signal_, rule)
        if self.variant == "tb" and self.eta_.sum() > 0:
            self.y_center_ = float(self.y_origin_ @ self.eta_ / self.eta_.sum())
        estimate = self._integrate(X[signal], self.eta_)
        self.overall_sn_db_ = float(to_db(self._overall_eta(estimate, y[signal])))
        return self

    def _integrate(self, X, weights):
        """Eta-weighted mean of the per-item estimates of y (``y_center_`` if none)."""
        total = weights.sum()
        if total <= 0:
            return np.full(len(X), self.y_center_)
        # Items with weight 0 may have beta 0; divide by 1 instead, their weight is 0.
        beta = np.where(weights > 0, self.beta_, 1.0)
        per_item = (X - self.x_origin_) / beta + self.y_origin_
        return per_item @ weights / total

    def _overall_eta(self, estimate, y):
        """SN ratio of the estimate (as the item) against the true y (as the signal)."""
        M, M_hat = y - self.y_center_, estimate - self.y_center_
        _, eta = item_sn_ratio(M @ M, M @ M_hat, M_hat @ M_hat, len(y), self.sn_rule_)
        return eta

    def predict(self, X):
        """Integrated T-method estimate of y for each row of X."""
        require_fitted(self, "eta_")
        X = validate_data(self, X, reset=False).astype(float)
        return self._integrate(X, self.eta_)

    def item_gains(self, X, y, unit_mask=None):
        """dB gain of each item from a two-level orthogonal array, without refitting.

        Items go on the first columns of the smallest array in L4, L8, L12, L16, L32,
        L64 with enough columns (level 1 = use the item). For each row the overall SN
        ratio of the estimate from the used items (fitted beta and eta) is computed on
        the signal rows of ``(X, y)``; an item's gain is the mean dB over rows that use
        it minus the mean over rows that do not. Keep items with a positive gain.

        Rows that use no item at all (possible only with fewer items than columns) are
        left out: they are not a candidate item set. A row whose estimate has no signal
        (its items all have eta 0, or its overall SN ratio is 0, i.e. -inf dB) counts
        ``NO_SIGNAL_MARGIN_DB`` below the worst row with a signal; so does an item side
        left with no rows. If no row has a signal, every gain is 0.
        """
        require_fitted(self, "eta_")
        X = validate_data(self, X, reset=False).astype(float)
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X):
            raise InputError(f"`y` has {len(y)} rows but `X` has {len(X)}.")
        signal = self._signal_rows(len(y), unit_mask)
        use = _item_usage(X.shape[1])
        db = np.array([self._row_db(X[signal], y[signal], row) for row in use])
        return _gains_from_rows(use, db)

    def _row_db(self, X, y, row_use):
        if not row_use.any():
            return np.nan  # an empty item set: left out of the comparison
        weights = np.where(row_use, self.eta_, 0.0)
        if weights.sum() <= 0:
            return -np.inf  # items whose weights are all 0 give no signal
        return float(to_db(self._overall_eta(self._integrate(X, weights), y)))


def _item_usage(n_items):
    """Boolean (rows, n_items) usage matrix from the smallest two-level array."""
    from qeuopt.design.arrays import orthogonal_array  # not needed until item selection

    for name, n_columns in _TWO_LEVEL_ARRAYS:
        if n_items <= n_columns:
            return orthogonal_array(name)[:, :n_items] == 1
    raise InputError(f"item_gains supports at most {_TWO_LEVEL_ARRAYS[-1][1]} items (L64); got {n_items}.")


def _gains_from_rows(use, db):
    """Mean dB with each item minus mean dB without it (see ``item_gains``)."""
    counted = ~np.isnan(db)
    has_signal = np.isfinite(db)
    if not has_signal.any():
        return np.zeros(use.shape[1])
    floor = db[has_signal].min() - NO_SIGNAL_MARGIN_DB
    db = np.where(counted & ~has_signal, floor, db)

    def side_mean(rows):
        rows = rows & counted
        return db[rows].mean() if rows.any() else floor

    return np.array([side_mean(u) - side_mean(~u) for u in use.T])
