"""A Gaussian process over factor levels: a smooth model that assumes no additivity.

Levels are encoded so that distances mean something: a numeric factor (every level a
real number, >= 3 levels) becomes its value scaled to [0, 1], so neighbouring levels
are close; any other factor becomes a one-hot block scaled by ``1/sqrt(2)``, so two
different levels are at distance 1, as far apart as the two ends of a numeric range.
The kernel is ``constant * Matern(nu=2.5) + white noise`` with its hyperparameters
fitted by maximum likelihood (scikit-learn's :class:`GaussianProcessRegressor`). It can
express any interaction, but learns it only from nearby observed settings.

Replicates are averaged first: the GP sees one point per observed condition, so its cost
(cubic in points) grows with conditions, not images. A mean of n replicates carries the
pooled replicate variance / n as known noise; the white-noise term adds what the kernel
cannot explain (all of the noise when nothing was replicated).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from qeuopt.errors import InputError
from qeuopt.model.setting import is_numeric_level
from qeuopt.model.tmethod import require_fitted


class LevelGP(RegressorMixin, BaseEstimator):
    """Gaussian-process regression over a DataFrame of factor levels.

    Parameters
    ----------
    levels : optional mapping factor -> every level (tried or not); numeric ranges and
        one-hot blocks then cover untried levels too.
    random_state : seeds the likelihood optimizer's restarts.

    Attributes: ``factors_``, ``levels_``, ``gp_`` (the fitted GaussianProcessRegressor),
    ``noise_`` (the fitted white-noise variance, in the units of ``y``).
    """

    def __init__(self, levels=None, random_state=0):
        self.levels = levels
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> LevelGP:
        if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
            raise InputError(f"`X`: a pandas DataFrame with one column per factor is needed; given {type(X).__name__}")
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X) or len(y) < 2 or not np.all(np.isfinite(y)):
            raise InputError(
                f"`y`: one finite score per row of X (>= 2 rows) is needed; given {len(y)} for {len(X)} rows"
            )
        given = self.levels or {}
        self.factors_ = list(X.columns)
        self.levels_ = {
            f: list(given.get(f, [])) + [v for v in pd.unique(X[f]) if v not in list(given.get(f, []))]
            for f in self.factors_
        }
        frame = pd.DataFrame({"key": list(map(tuple, X.itertuples(index=False))), "y": y})
        stats = frame.groupby("key", sort=False)["y"].agg(["mean", "count"])
        replicated = len(y) - len(stats)
        within = float(((frame["y"] - frame["key"].map(stats["mean"])) ** 2).sum() / replicated) if replicated else 0.0
        scale = float(np.var(stats["mean"])) or 1.0  # normalize_y: alpha is in units of the means' variance
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(1.0, (0.05, 20.0), nu=2.5) + WhiteKernel(0.1, (1e-6, 1e1))
        self.gp_ = GaussianProcessRegressor(
            kernel,
            alpha=within / stats["count"].to_numpy() / scale + 1e-10,
            normalize_y=True,
            random_state=self.random_state,
        )
        conditions = pd.DataFrame(list(stats.index), columns=self.factors_, dtype=object)
        with warnings.catch_warnings():  # a bound reached is an answer here (e.g. no noise), not a fault
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp_.fit(self._encode(conditions), stats["mean"].to_numpy())
        self.noise_ = float(self.gp_.kernel_.k2.noise_level) * float(self.gp_._y_train_std) ** 2
        return self

    def _encode(self, X: pd.DataFrame) -> np.ndarray:
        blocks = []
        for factor in self.factors_:
            levels, values = self.levels_[factor], X[factor].tolist()
            if len(levels) >= 3 and all(is_numeric_level(v) for v in levels):
                low, high = float(min(levels)), float(max(levels))
                blocks.append(((np.asarray(values, dtype=float) - low) / (high - low or 1.0))[:, None])
            else:
                index = {level: i for i, level in enumerate(levels)}
                codes = np.array([index.get(v, -1) for v in values])
                blocks.append((codes[:, None] == np.arange(len(levels))) / np.sqrt(2.0))
        return np.hstack(blocks).astype(float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        require_fitted(self, "gp_")
        return self.gp_.predict(self._encode(X))

    def predict_std(self, X: pd.DataFrame) -> np.ndarray:
        """Posterior sd of each condition's mean score (the white noise taken out)."""
        require_fitted(self, "gp_")
        _, std = self.gp_.predict(self._encode(X), return_std=True)
        return np.sqrt(np.maximum(std**2 - self.noise_, 0.0))

    def sample_predictions(self, X: pd.DataFrame, n_draws: int, random_state=None) -> np.ndarray:
        """(n_draws, n_rows) draws of the mean scores, independent per row (a cheap
        stand-in for joint draws, enough to pick argmaxes for Thompson sampling)."""
        mean, std = self.predict(X), self.predict_std(X)
        noise = np.random.default_rng(random_state).standard_normal((n_draws, len(mean)))
        return mean[None, :] + noise * std[None, :]


class ResidualGP(RegressorMixin, BaseEstimator):
    """A fitted model plus a :class:`LevelGP` over what it leaves unexplained.

    The model is the prior mean; the GP learns, by maximum likelihood, how far the
    observed conditions depart from it and how much of that is noise. Where the model
    fits, the GP's amplitude goes to zero and its predictions stand; where the truth has
    interactions the model cannot express (real ratings), an observed condition's
    estimate moves towards its observed mean, by as much as the noise allows. This is
    the posterior a recommendation should rank by: neither the model alone (blind to
    what was seen) nor the raw best observation (the winner's curse under noise).

    Parameters
    ----------
    base : an already fitted model with ``predict(X)``; ``fit`` does not refit it.
    levels, random_state : passed to the :class:`LevelGP`.
    """

    def __init__(self, base, levels=None, random_state=0):
        self.base = base
        self.levels = levels
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> ResidualGP:
        residual = np.asarray(y, dtype=float).ravel() - self.base.predict(X)
        self.gp_ = LevelGP(levels=self.levels, random_state=self.random_state).fit(X, residual)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        require_fitted(self, "gp_")
        return self.base.predict(X) + self.gp_.predict(X)
