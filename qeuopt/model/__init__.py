"""Models that learn from scores, following the scikit-learn estimator contract.

- :class:`TMethodRegressor`: Taguchi's T-method (T1, Ta, Tb, T2) with item selection
  on a two-level orthogonal array (:meth:`TMethodRegressor.item_gains`).
- :class:`PairFactorization`: biased matrix factorization (ALS) over a sparse matrix of
  scores keyed by pairs, e.g. (artist in slot A, artist in slot B) or (rater,
  condition); :func:`cross_validated_rmse` reports its K-fold error.
- :class:`BradleyTerry`: pairwise choices (left, right, tie) to per-item scores with
  Laplace intervals; :func:`most_informative_pair` picks the next pair to judge.
"""

from qeuopt.model.bradley_terry import BradleyTerry, most_informative_pair, pair_matrix
from qeuopt.model.cf import CVResult, PairFactorization, cross_validated_rmse
from qeuopt.model.tmethod import TMethodRegressor

__all__ = [
    "BradleyTerry",
    "CVResult",
    "PairFactorization",
    "TMethodRegressor",
    "cross_validated_rmse",
    "most_informative_pair",
    "pair_matrix",
]
