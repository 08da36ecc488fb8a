"""How well each way of choosing the next pair recovers a known order, for one budget of choices.

Simulated raters judge K conditions whose true scores are evenly spaced over [-2, 2]
logits (neighbours 4/(K-1) apart), by the Bradley-Terry model itself (no ties). After
``budget`` choices a :class:`qeuopt.model.BradleyTerry` is fitted and compared to the truth:

- ``tau``: Kendall's tau between fitted and true scores (1 = the order exactly);
- ``top``: how often the fitted best is the true best;
- ``ms/choice``: CPU time to pick one pair (a refit included).

Pair choosers: ``information`` (qeuopt's: the largest expected information gain,
:func:`qeuopt.model.most_informative_pair`), ``random`` (any pair, uniformly),
``balanced`` (a random pair among the least-compared conditions: round-robin coverage,
the usual hand-made schedule).

    python benchmarks/pair_choice.py [--items 9 18] [--per-item 3 6] [--runs 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import kendalltau

from qeuopt.model.bradley_terry import BradleyTerry, most_informative_pair, pair_matrix


def fit(left, right, y, items):
    return BradleyTerry(fit_intercept=False).fit(pair_matrix(left, right, items), y)


def information(left, right, y, items, rng):
    return most_informative_pair(fit(left, right, y, items), rng=rng)


def random_pair(left, right, y, items, rng):
    return tuple(rng.choice(items, 2, replace=False))


def balanced(left, right, y, items, rng):
    counts = np.bincount(np.r_[left, right], minlength=items) + rng.random(items)  # random among equals
    return tuple(np.argsort(counts)[:2])


CHOOSERS = {"information": information, "random": random_pair, "balanced": balanced}


def one_run(choose, items: int, budget: int, seed: int) -> tuple[float, bool, float]:
    rng = np.random.default_rng(seed)
    theta = np.linspace(-2.0, 2.0, items)
    left, right, y = [0, 1], [1, 0], [1, -1]  # one even start: two classes to fit from the first pick
    cpu = 0.0
    for _ in range(budget):
        start = time.process_time()
        i, j = choose(left, right, y, items, rng)
        cpu += time.process_time() - start
        i, j = (j, i) if rng.random() < 0.5 else (i, j)
        wins = rng.random() < 1 / (1 + np.exp(-(theta[i] - theta[j])))
        left.append(int(i)), right.append(int(j)), y.append(1 if wins else -1)
    scores = fit(left, right, y, items).coef_
    return kendalltau(scores, theta).statistic, int(np.argmax(scores)) == items - 1, 1000 * cpu / budget


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[9, 18], help="conditions (default 9 18)")
    parser.add_argument(
        "--per-item", type=int, nargs="+", default=[3, 6], help="budget = this many choices per condition (default 3 6)"
    )
    parser.add_argument("--runs", type=int, default=40, help="simulated studies per cell (default 40)")
    args = parser.parse_args(argv)
    print(f"{'K':>3} {'choices':>7}  {'chooser':<12} {'tau':>13} {'top':>5} {'ms/choice':>9}")
    for items in args.items:
        for per in args.per_item:
            budget = per * items
            for name, choose in CHOOSERS.items():  # the same seeds for every chooser
                runs = [one_run(choose, items, budget, seed) for seed in range(args.runs)]
                tau, top, ms = (np.array(column, float) for column in zip(*runs))
                print(
                    f"{items:>3} {budget:>7}  {name:<12} {tau.mean():.3f} ± {tau.std(ddof=1) / np.sqrt(len(tau)):.3f}"
                    f" {top.mean():>5.2f} {ms.mean():>9.2f}"
                )


if __name__ == "__main__":
    main()
