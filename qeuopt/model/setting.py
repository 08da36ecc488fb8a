"""A model of a condition's score that can predict settings never generated.

:class:`SettingModel` scores a condition as grand mean + one effect per factor level +
a low-rank pair term. Main effects are a ridge regression on one-hot levels (a level
seen once moves the prediction less than one seen ten times; one never seen adds
nothing); for numeric factors neighbouring levels are also pulled towards a line, so an
untried strength between two tried ones borrows from them. The pair term is a
:class:`~qeuopt.model.PairFactorization` fitted on what the main effects leave over: a
pair never generated together is predicted from its artists' latent vectors, learnt from
the pairs each was in. :func:`qeuopt.recommend.rank.rank` runs every combination through it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from qeuopt.errors import InputError
from qeuopt.model.cf import PairFactorization
from qeuopt.model.tmethod import require_fitted

# Main effects and pair term are refitted in turn (backfitting). On 300 L18 problems the
# top pick's regret was the same after 3, 5, 10 or 20 sweeps, and worse after 1.
BACKFIT_SWEEPS = 3


def is_numeric_level(level: Any) -> bool:
    """True for real numbers (not bools): levels with an order and a spacing."""
    return isinstance(level, numbers.Real) and not isinstance(level, bool)


class SettingModel(RegressorMixin, BaseEstimator):
    """Score of a condition = grand mean + additive main effect of each factor level
    + a low-rank interaction over the artist pair (PairFactorization fitted on the residuals).

    Parameters
    ----------
    pair : "auto" (the two factors with string levels and the most levels, ties in column
        order, if there are >= 2), None (no pair term), or (name_a, name_b).
    n_factors : rank of the pair interaction.
    reg : ridge penalty on each level effect, in observations: a level seen ``n`` times
        keeps about ``n / (n + reg)`` of its raw effect, so rare levels shrink to 0.
    pair_reg : the PairFactorization's penalty per observation (on 300 L18 problems the
        top pick's mean regret was 0.25 with 0.1, 0.29 with 0.3, 0.41 with 1.0).
    smooth : penalty on second differences of the effects of numeric factors (>= 3 levels).
    levels : optional mapping factor -> every level, tried or not; untried numeric levels
        then get effects interpolated through ``smooth``.
    random_state : seeds the pair factorization.

    ``X`` is a DataFrame, one column per factor, holding the level objects. scikit-learn's
    generic ``parametrize_with_checks`` feeds numeric arrays, so it does not apply to this
    DataFrame-in estimator; the basic contract holds: ``__init__`` only stores, ``fit``
    returns self and sets ``_`` attributes, ``predict`` raises NotFittedError before fit.

    Attributes: ``factors_``, ``levels_`` (factor -> known levels), ``intercept_``,
    ``effects_`` and ``counts_`` (factor -> level -> effect / training observations),
    ``effects_cov_`` (posterior covariance of the stacked effects), ``pair_`` (the pair's
    factors or None), ``pair_model_``.
    """

    def __init__(self, pair="auto", n_factors=2, reg=1.0, pair_reg=0.1, smooth=1.0, levels=None, random_state=0):
        self.pair = pair
        self.n_factors = n_factors
        self.reg = reg
        self.pair_reg = pair_reg
        self.smooth = smooth
        self.levels = levels
        self.random_state = random_state

    # --------------------------------------------------------------------------- fit
    def fit(self, X: pd.DataFrame, y) -> SettingModel:
        """Fit main effects and the pair term to the scores ``y`` of the conditions ``X``."""
        X, y = self._check_fit_input(X, y)
        self.factors_ = list(X.columns)
        self.levels_ = self._known_levels(X)
        self.pair_ = self._resolve_pair()
        codes = self._codes(X)
        self.counts_ = {
            f: dict(zip(self.levels_[f], np.bincount(codes[f], minlength=len(self.levels_[f])))) for f in self.factors_
        }
        design, penalty = self._design(codes), self._penalty()
        pair_part = np.zeros(len(y))
        self.pair_model_ = None
        for _ in range(BACKFIT_SWEEPS if self.pair_ else 1):
            intercept, beta, inverse = _ridge(design, y - pair_part, penalty)
            additive = intercept + design @ beta
            if self.pair_:
                self.pair_model_ = self._fit_pair(X, y - additive)
                pair_part = self._pair_part(X)
        self.intercept_ = float(intercept)
        self.effects_ = self._split_effects(beta)
        self.effects_cov_ = _noise_variance(y, y - additive - pair_part, design, inverse) * inverse
        return self

    def _check_fit_input(self, X, y):
        if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
            raise InputError(
                f"`X`: a pandas DataFrame with one column per factor is needed; "
                f"given {type(X).__name__} with shape {getattr(X, 'shape', None)}"
            )
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X) or len(y) == 0:
            raise InputError(f"`y`: one score per row of X ({len(X)} rows) is needed; given {len(y)}")
        if not np.all(np.isfinite(y)):
            raise InputError("`y`: scores must be finite; drop unscored rows (NaN) before fit")
        for name, value, zero_ok in (
            ("reg", self.reg, False),
            ("pair_reg", self.pair_reg, False),
            ("smooth", self.smooth, True),
        ):
            if not is_numeric_level(value) or value < 0 or (value == 0 and not zero_ok):
                raise InputError(f"`{name}`: a number {'>=' if zero_ok else '>'} 0 is needed; given {value!r}")
        return X, y

    def _known_levels(self, X: pd.DataFrame) -> dict[str, list]:
        given = self.levels or {}
        known = {}
        for factor in X.columns:
            seen = list(pd.unique(X[factor]))
            declared = list(given.get(factor, []))
            known[factor] = declared + [v for v in seen if v not in declared]
        return known

    def _resolve_pair(self):
        if self.pair is None:
            return None
        if isinstance(self.pair, str):
            if self.pair != "auto":
                raise InputError(f"`pair`: allowed 'auto', None or (factor_a, factor_b); given {self.pair!r}")
            textual = [f for f in self.factors_ if not any(is_numeric_level(v) for v in self.levels_[f])]
            textual.sort(key=lambda f: -len(self.levels_[f]))  # stable: ties keep column order
            return tuple(textual[:2]) if len(textual) >= 2 else None
        pair = tuple(self.pair)
        if len(pair) != 2 or pair[0] == pair[1] or any(f not in self.factors_ for f in pair):
            raise InputError(f"`pair`: two different factors among {self.factors_} are needed; given {self.pair!r}")
        return pair

    def _fit_pair(self, X: pd.DataFrame, residual: np.ndarray) -> PairFactorization:
        model = PairFactorization(n_factors=self.n_factors, reg=self.pair_reg, random_state=self.random_state)
        return model.fit(X[list(self.pair_)].to_numpy(dtype=object), residual)

    # ------------------------------------------------------------- design and penalty
    def _codes(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per factor, the position of each row's level in ``levels_`` (-1: unknown)."""
        codes = {}
        for factor in self.factors_:
            index = {level: i for i, level in enumerate(self.levels_[factor])}
            codes[factor] = np.fromiter((index.get(v, -1) for v in X[factor].tolist()), dtype=np.intp, count=len(X))
        return codes

    def _design(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        """One-hot levels, one block per factor; an unknown level (code -1) is all zeros."""
        return np.hstack([(codes[f][:, None] == np.arange(len(self.levels_[f]))).astype(float) for f in self.factors_])

    def _penalty(self) -> np.ndarray:
        sizes = [len(self.levels_[f]) for f in self.factors_]
        penalty = self.reg * np.eye(sum(sizes))
        start = 0
        for factor, size in zip(self.factors_, sizes):
            levels = self.levels_[factor]
            if self.smooth > 0 and size >= 3 and all(is_numeric_level(v) for v in levels):
                order = np.argsort(np.asarray(levels, dtype=float), kind="stable")
                second = np.zeros((size - 2, size))
                for row in range(size - 2):  # effect[k] - 2 effect[k+1] + effect[k+2], in value order
                    second[row, order[row : row + 3]] = (1.0, -2.0, 1.0)
                block = slice(start, start + size)
                penalty[block, block] += self.smooth * second.T @ second
            start += size
        return penalty

    def _split_effects(self, beta: np.ndarray) -> dict[str, dict]:
        bounds = np.cumsum([0] + [len(self.levels_[f]) for f in self.factors_])
        return {
            f: dict(zip(self.levels_[f], beta[lo:hi].tolist())) for f, lo, hi in zip(self.factors_, bounds, bounds[1:])
        }

    # ---------------------------------------------------------------------- predict
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted score of each condition (row) of ``X``; unknown levels add 0."""
        require_fitted(self, "intercept_")
        X = self._check_predict_input(X)
        return self.intercept_ + self._design(self._codes(X)) @ self._effect_vector() + self._pair_part(X)

    def sample_predictions(self, X: pd.DataFrame, n_draws: int, random_state=None) -> np.ndarray:
        """(n_draws, n_rows) predictions with main effects drawn from their posterior.

        Ridge regression is the posterior mean under a Gaussian prior whose precision is
        the penalty, with covariance ``effects_cov_``; the pair term stays at its fit. The
        argmax of each draw is a setting worth trying (Thompson sampling): it balances
        exploring uncertain levels against exploiting good ones.
        """
        require_fitted(self, "intercept_")
        X = self._check_predict_input(X)
        draws = np.random.default_rng(random_state).multivariate_normal(
            self._effect_vector(), self.effects_cov_, size=n_draws, method="cholesky"
        )
        return self.intercept_ + draws @ self._design(self._codes(X)).T + self._pair_part(X)[None, :]

    def predict_std(self, X: pd.DataFrame) -> np.ndarray:
        """Posterior sd of each condition's predicted mean score from the main effects'
        uncertainty (``effects_cov_``); the pair term counts as known, so with a pair
        term this is a lower bound."""
        require_fitted(self, "intercept_")
        design = self._design(self._codes(self._check_predict_input(X)))
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", design, self.effects_cov_, design), 0.0))

    def _effect_vector(self) -> np.ndarray:
        return np.concatenate([list(self.effects_[f].values()) for f in self.factors_])

    def _pair_part(self, X: pd.DataFrame) -> np.ndarray:
        if self.pair_model_ is None:
            return np.zeros(len(X))
        return self.pair_model_.predict(X[list(self.pair_)].to_numpy(dtype=object))

    def support(self, X: pd.DataFrame) -> np.ndarray:
        """Per condition, the fewest training observations behind any of its levels (this
        includes the pair term's support, the smaller count of its two keys); 0 = unseen."""
        require_fitted(self, "intercept_")
        X = self._check_predict_input(X)
        per_factor = []
        for factor, codes in self._codes(X).items():
            counts = np.append(list(self.counts_[factor].values()), 0)  # code -1 -> 0
            per_factor.append(counts[codes])
        return np.min(per_factor, axis=0).astype(int)

    def _check_predict_input(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise InputError(
                f"`X`: a pandas DataFrame with columns {self.factors_} is needed; given {type(X).__name__}"
            )
        missing = [f for f in self.factors_ if f not in X.columns]
        if missing:
            raise InputError(f"`X`: columns {self.factors_} are needed; missing {missing}")
        return X


def _ridge(design: np.ndarray, y: np.ndarray, penalty: np.ndarray):
    """Intercept and coefficients minimizing ||y - b0 - D beta||^2 + beta' P beta (b0 free),
    and the inverse of the penalized Gram matrix (the posterior covariance / noise variance)."""
    mean_row, mean_y = design.mean(axis=0), float(y.mean())
    centred = design - mean_row
    inverse = np.linalg.inv(centred.T @ centred + penalty)
    beta = inverse @ (centred.T @ (y - mean_y))
    return mean_y - float(mean_row @ beta), beta, inverse


def _noise_variance(y: np.ndarray, residual: np.ndarray, design: np.ndarray, inverse: np.ndarray) -> float:
    """Residual variance with the ridge's effective degrees of freedom, plus a weak prior.

    With about as many effects as observations the residuals are nearly zero and say
    little, so a prior guess, half the variance of the scores, worth two observations
    keeps the estimate (and the exploration it drives) from collapsing.
    """
    centred = design - design.mean(axis=0)
    used_dof = float(np.trace(centred @ inverse @ centred.T)) + 1.0  # + the intercept
    left_dof = max(len(residual) - used_dof, 0.0)
    prior = 0.5 * float(np.var(y)) + 1e-12
    return (float(residual @ residual) + 2.0 * prior) / (left_dof + 2.0)
