"""Rating-prediction benchmark for PairFactorization on MovieLens-100k-shaped data.

    python benchmarks/cf_benchmark.py            # about a minute on 2 cores

The data are synthetic (no download): 943 users x 1682 items, about 100k ratings,
every user with at least 20 ratings, power-law item popularity, user and item biases,
a rank-8 taste model, Gaussian noise, ratings rounded and clipped to 1..5. The seed is
fixed, so every run sees the same matrix. 5-fold shuffled CV, one table row per
method. scikit-surprise's SVD is included when ``import surprise`` works (it needs
numpy < 2 on some platforms; run this script with an interpreter that has it, e.g. a
throwaway venv); otherwise the table says "surprise: not installed".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor

# Run from a checkout without installing: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qeuopt.model.cf import PairFactorization, cross_validated_rmse  # noqa: E402

N_USERS, N_ITEMS, N_RATINGS, RANK, SEED = 943, 1682, 100_000, 8, 20240601


def user_activity(rng):
    """Ratings per user: at least 20, at most 737 (as in MovieLens), long right tail."""
    extra = rng.lognormal(np.log(45.0), 1.0, N_USERS)
    for _ in range(10):  # rescale to the total, re-cap, until the cap stops binding
        extra = np.minimum(extra * (N_RATINGS - 20 * N_USERS) / extra.sum(), 717.0)
    counts = 20 + np.floor(extra).astype(int)
    counts[np.argsort(-(extra % 1))[: N_RATINGS - counts.sum()]] += 1  # the remainder
    return counts


def rated_items(rng, counts):
    """Per user, distinct items drawn with power-law popularity (Gumbel top-k trick)."""
    popularity = (np.arange(N_ITEMS) + 100.0) ** -2.0
    rng.shuffle(popularity)  # item ids carry no popularity order
    ranked = np.argsort(-(np.log(popularity) + rng.gumbel(size=(N_USERS, N_ITEMS))), axis=1)
    # MovieLens lists only rated items: give each item nobody drew to a distinct user,
    # in place of that user's least-preferred pick.
    picked = np.arange(N_ITEMS) < counts[:, None]  # each user's first counts[u] ranks
    unrated = np.setdiff1d(np.arange(N_ITEMS), ranked[picked])
    takers = rng.choice(N_USERS, size=len(unrated), replace=False)
    ranked[takers, counts[takers] - 1] = unrated
    users = np.repeat(np.arange(N_USERS), counts)
    items = ranked[picked]  # row-major, so in the same user order as `users`
    return users, items, popularity


def movielens_like(seed=SEED):
    """(X, y, truth): X an object array of (user, item) ids, y integer ratings 1..5,
    truth the noise-free score clipped to 1..5 (its RMSE is a floor for any method)."""
    rng = np.random.default_rng(seed)
    users, items, popularity = rated_items(rng, user_activity(rng))
    log_pop = np.log(popularity)
    user_bias = rng.normal(0.0, 0.42, N_USERS)
    # Popular items tend to be rated higher, as in MovieLens.
    item_bias = rng.normal(0.0, 0.45, N_ITEMS) + 0.25 * (log_pop - log_pop.mean()) / log_pop.std()
    taste_u = rng.normal(0.0, 0.45, (N_USERS, RANK))
    taste_i = rng.normal(0.0, 0.45, (N_ITEMS, RANK))
    latent = 3.22 + user_bias[users] + item_bias[items]
    latent += np.einsum("ij,ij->i", taste_u[users], taste_i[items])
    ratings = np.clip(np.rint(latent + rng.normal(0.0, 0.85, len(users))), 1, 5)
    X = np.empty((len(users), 2), dtype=object)
    X[:, 0], X[:, 1] = users.tolist(), items.tolist()
    return X, ratings, np.clip(latent, 1, 5)


class SurpriseSVD(RegressorMixin, BaseEstimator):
    """scikit-surprise SVD (its defaults) behind fit/predict on an (n, 2) key array."""

    def __init__(self, random_state=0):
        self.random_state = random_state

    def fit(self, X, y):
        import pandas as pd
        from surprise import SVD, Dataset, Reader

        frame = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "rating": y})
        data = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5)))
        self.algo_ = SVD(random_state=self.random_state).fit(data.build_full_trainset())
        return self

    def predict(self, X):
        return np.array([self.algo_.predict(u, i).est for u, i in X])


def methods():
    """(name, estimator) rows of the table; surprise only if importable."""
    rows = [
        ("global mean", DummyRegressor()),
        ("biases only (PairFactorization n_factors=0)", PairFactorization(0, reg=0.1)),
        ("PairFactorization n_factors=10", PairFactorization(10, random_state=0)),
        ("PairFactorization n_factors=30", PairFactorization(30, random_state=0)),
    ]
    try:
        import surprise  # noqa: F401

        rows.append(("surprise SVD (defaults)", SurpriseSVD()))
    except ImportError:
        rows.append(("surprise: not installed", None))
    return rows


def main():
    start = time.perf_counter()
    X, y, truth = movielens_like()
    print(
        f"data: {len(np.unique(X[:, 0].astype(int)))} users x "
        f"{len(np.unique(X[:, 1].astype(int)))} items, {len(y)} ratings, "
        f"rating std {y.std():.3f}, built in {time.perf_counter() - start:.1f} s"
    )
    print(f"{'method':<46} {'RMSE (5-fold)':>16} {'fit s':>7}")
    floor = np.sqrt(np.mean((truth - y) ** 2))
    print(f"{'noise floor (true scores, no fitting)':<46} {floor:>8.4f} {'':>7} {'-':>7}")
    for name, estimator in methods():
        if estimator is None:
            print(f"{name:<46} {'-':>16} {'-':>7}")
            continue
        result = cross_validated_rmse(estimator, X, y, cv=5, random_state=0)
        print(f"{name:<46} {result.rmse:>8.4f} ± {result.rmse_std:.4f} {result.fit_seconds:>7.2f}")


if __name__ == "__main__":
    main()
