"""Choose the model by out-of-sample error, and say why.

:class:`ModelSelector` cross-validates candidate models on the observed conditions and
keeps the simplest one whose error is within one standard error of the best (Breiman's
one-standard-error rule: a more complex model must earn its keep by more than the
noise of the comparison). Candidates, simplest first:

- ``mean``: no model. An observed condition scores its observed mean, any other the
  grand mean, so ranking by it is ranking by what was observed (best observed first).
- ``additive``: :class:`~qeuopt.model.setting.SettingModel` without a pair term, one
  effect per level (the "biases only" model).
- ``pair``: the same plus the artist-pair factorization.
- ``gp``: :class:`~qeuopt.model.levelgp.LevelGP`, which assumes no additivity.

Folds hold out whole conditions (replicates stay together), so the error is that of
predicting a setting not yet tried, the job a recommender does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import GroupKFold

from qeuopt.errors import InputError
from qeuopt.model.levelgp import LevelGP
from qeuopt.model.setting import SettingModel
from qeuopt.model.tmethod import require_fitted

CANDIDATES = ("mean", "additive", "pair", "gp")  # simplest first: the 1-SE rule prefers earlier ones
MIN_CONDITIONS = 4  # fewer conditions than this leave no fold to learn from: no model


def condition_keys(X: pd.DataFrame) -> list[tuple]:
    """One hashable key per row: its levels of every column."""
    return list(map(tuple, X.itertuples(index=False)))


class ConditionMeans(RegressorMixin, BaseEstimator):
    """No model: what was observed. An observed condition scores its mean, shrunk towards
    the grand mean by ``tau^2 / (tau^2 + noise^2 / n)`` when replicates measure the noise
    (empirical Bayes: a mean of one noisy image says little when conditions differ
    little); an unobserved condition scores the grand mean. Without replicates the noise
    is unknown and the raw means are kept (a common shrinkage would not change the order).

    ``predict_std``: an observed condition's standard error (the pooled spread of single
    observations, or the overall sd without replicates, over the square root of its
    count); an unobserved one's spread of the condition means."""

    def fit(self, X: pd.DataFrame, y) -> ConditionMeans:
        y = np.asarray(y, dtype=float).ravel()
        frame = pd.DataFrame({"key": condition_keys(X), "y": y})
        stats = frame.groupby("key", sort=False)["y"].agg(["mean", "count"])
        self.means_ = dict(zip(stats.index, stats["mean"]))
        self.counts_ = dict(zip(stats.index, stats["count"]))
        self.grand_mean_ = float(y.mean())
        self.spread_ = float(np.std(stats["mean"], ddof=1)) if len(stats) > 1 else float(np.std(y))
        within = frame["y"] - frame["key"].map(self.means_)
        replicated = int(len(y) - len(stats))
        # without replicates the single-observation noise is unknown: the overall sd bounds it
        self.noise_sd_ = float(np.sqrt((within**2).sum() / replicated)) if replicated else float(np.std(y))
        if replicated:
            noise = self.noise_sd_**2 / stats["count"]
            tau2 = max(float(np.var(stats["mean"])) - float(noise.mean()), 1e-12)
            shrunk = self.grand_mean_ + (stats["mean"] - self.grand_mean_) * tau2 / (tau2 + noise)
            self.means_ = dict(zip(stats.index, shrunk))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        require_fitted(self, "means_")
        return np.array([self.means_.get(k, self.grand_mean_) for k in condition_keys(X)])

    def predict_std(self, X: pd.DataFrame) -> np.ndarray:
        require_fitted(self, "means_")
        return np.array(
            [
                self.noise_sd_ / np.sqrt(self.counts_[k]) if k in self.counts_ else self.spread_
                for k in condition_keys(X)
            ]
        )

    def sample_predictions(self, X, n_draws: int, random_state=None) -> np.ndarray:
        mean, std = self.predict(X), self.predict_std(X)
        return mean + np.random.default_rng(random_state).standard_normal((n_draws, len(mean))) * std


class ModelSelector(RegressorMixin, BaseEstimator):
    """Cross-validate ``candidates`` on the observed conditions; predict with the chosen one.

    Parameters
    ----------
    candidates : names from ``CANDIDATES``; one name forces that model (its error and the
        mean's are still measured and reported).
    pair : the pair term's factors for the ``pair`` candidate: "auto" or (name_a, name_b).
    levels : mapping factor -> every level, passed to the models (untried levels).
    n_splits : folds (at most the number of observed conditions).
    random_state : seeds the folds and the models.

    Attributes: ``chosen_`` (a name), ``model_`` (the chosen model refitted on all data),
    ``cv_rmse_`` and ``cv_se_`` (name -> cross-validated RMSE and its standard error over
    folds), ``reason_`` (one sentence), ``n_conditions_``.
    """

    def __init__(self, candidates=CANDIDATES, pair="auto", levels=None, n_splits=5, random_state=0):
        self.candidates = candidates
        self.pair = pair
        self.levels = levels
        self.n_splits = n_splits
        self.random_state = random_state

    def _make(self, name: str):
        levels = dict(self.levels) if self.levels else None
        if name == "mean":
            return ConditionMeans()
        if name == "gp":
            return LevelGP(levels=levels, random_state=self.random_state)
        return SettingModel(
            pair=None if name == "additive" else self.pair, levels=levels, random_state=self.random_state
        )

    def _check_candidates(self) -> list[str]:
        names = [self.candidates] if isinstance(self.candidates, str) else list(self.candidates)
        unknown = [n for n in names if n not in CANDIDATES]
        if not names or unknown:
            raise InputError(f"`candidates`: names among {list(CANDIDATES)} are allowed; given {self.candidates!r}")
        return names

    def fit(self, X: pd.DataFrame, y) -> ModelSelector:
        names = self._check_candidates()
        if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
            raise InputError(f"`X`: a pandas DataFrame with one column per factor is needed; given {type(X).__name__}")
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X) or len(y) == 0 or not np.all(np.isfinite(y)):
            raise InputError(f"`y`: one finite score per row of X ({len(X)} rows) is needed; given {len(y)}")
        if "pair" in names and SettingModel(pair=self.pair).fit(X, y).pair_ is None:
            names = [n for n in names if n != "pair"] or ["additive"]  # no two text factors to pair
        groups = pd.factorize(pd.Series(condition_keys(X)))[0]
        self.n_conditions_ = int(groups.max()) + 1
        measured = list(dict.fromkeys(["mean", *names]))
        self.cv_rmse_, self.cv_se_ = self._cross_validate(X, y, groups, measured)
        self.chosen_, self.reason_ = self._choose(names)
        self.model_ = self._make(self.chosen_).fit(X, y)
        return self

    def _cross_validate(self, X, y, groups, names):
        if self.n_conditions_ < MIN_CONDITIONS:
            return {n: np.nan for n in names}, {n: np.nan for n in names}
        folds = GroupKFold(
            n_splits=min(self.n_splits, self.n_conditions_), shuffle=True, random_state=self.random_state
        )
        errors = {n: [] for n in names}
        for train, test in folds.split(X, y, groups):
            for name in names:
                model = self._make(name).fit(X.iloc[train], y[train])
                residual = y[test] - model.predict(X.iloc[test])
                errors[name].append(float(np.sqrt(np.mean(residual**2))))
        return (
            {n: float(np.mean(e)) for n, e in errors.items()},
            {n: float(np.std(e, ddof=1) / np.sqrt(len(e))) for n, e in errors.items()},
        )

    def _choose(self, names: list[str]) -> tuple[str, str]:
        if len(names) == 1:
            return names[0], f"{names[0]} as asked (not chosen by cross-validation); {self._errors_text()}"
        if self.n_conditions_ < MIN_CONDITIONS:
            return "mean", (
                f"only {self.n_conditions_} observed conditions, too few to check any model: "
                f"the best observed setting is used"
            )
        best = min(names, key=self.cv_rmse_.get)
        limit = self.cv_rmse_[best] + self.cv_se_[best]
        chosen = next(n for n in CANDIDATES if n in names and self.cv_rmse_[n] <= limit)
        if chosen == "mean":
            why = "no model predicted held-out conditions better than their mean: the best observed setting is used"
        elif chosen == best:
            why = f"{chosen} predicted held-out conditions best"
        else:
            why = (
                f"{chosen} is the simplest model within one standard error of the best ({best}); "
                f"the more complex one did not earn its keep"
            )
        return chosen, f"{why}; {self._errors_text()}"

    def _errors_text(self) -> str:
        if self.n_conditions_ < MIN_CONDITIONS:
            return "not cross-validated (too few conditions)"
        parts = [f"{n} {self.cv_rmse_[n]:.3g} +- {self.cv_se_[n]:.2g}" for n in self.cv_rmse_]
        return f"cross-validated RMSE over {self.n_conditions_} conditions: " + ", ".join(parts)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        require_fitted(self, "model_")
        return self.model_.predict(X)

    def predict_std(self, X: pd.DataFrame) -> np.ndarray:
        """Posterior sd of each condition's mean score under the chosen model."""
        require_fitted(self, "model_")
        return self.model_.predict_std(X)

    def predict_interval(self, X: pd.DataFrame, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of a central ``level`` interval of each condition's mean score."""
        if not 0 < level < 1:
            raise InputError(f"`level`: a probability strictly between 0 and 1 is needed; given {level!r}")
        mean, std = self.predict(X), self.predict_std(X)
        half = norm.ppf(0.5 + level / 2) * std
        return mean - half, mean + half

    def sample_predictions(self, X: pd.DataFrame, n_draws: int, random_state=None) -> np.ndarray:
        require_fitted(self, "model_")
        return self.model_.sample_predictions(X, n_draws=n_draws, random_state=random_state)
