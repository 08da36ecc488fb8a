"""Regret of the top recommendation after one L18 study, on synthetic studies.

Each instance is a study shaped like ``studies/artist_pairs_l18.toml``: three artists per
slot with a low-rank pair interaction, strength and guidance at three levels with smooth
optima, an inert scheduler (2 levels) and steps (3 levels), seed noise. One L18 is run
(18 noisy evaluations, one image each), then settings are picked by:

- ``recommend.rank`` (top row): main effects + pair factorization, over all 486 settings;
- ``rank, no pair term``: the same model with ``pair=None``;
- ``Taguchi optimum``: the classic pick, the best level of each factor by its mean;
- ``best observed``: the best of the 18 evaluated conditions.

Regret = true value at the optimum - true value of the pick (noise-free), in the
synthetic units (an artist's own bias has sd 1, seed noise sd 0.75). ``blind`` is the
regret of a setting drawn at random from the grid (optimum minus grid mean).

    python benchmarks/regret.py [--instances 200] [--noise 0.75]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from qeuopt.analysis.effects import analyze
from qeuopt.design.assign import assign
from qeuopt.recommend.rank import rank
from qeuopt.testing.synthetic import make_problem

L18_SHAPE = dict(
    n_artists=3,
    strength=(0.35, 0.55, 0.75),
    guidance=(5.0, 8.0, 11.0),
    inert={"scheduler": ("euler_a", "dpmpp_2m"), "steps": (20, 30, 40)},
)


def picks(seed: int, noise: float) -> dict[str, float]:
    """Regret of each way of choosing, for one synthetic study run as one L18."""
    problem = make_problem(seed, noise=noise, **L18_SHAPE)
    factors = problem.factors
    rows = assign({name: len(levels) for name, levels in factors.items()}, "L18").rows(factors)
    data = pd.DataFrame(rows, dtype=object).assign(score=[problem.evaluate(row) for row in rows])
    data["score"] = data["score"].astype(float)

    def top(**kwargs) -> dict:
        return rank(factors, data, "score", top=1, **kwargs).iloc[0][list(factors)].to_dict()

    taguchi = analyze(data, factors, "score", condition=None).optimum
    best_row = data.loc[data["score"].idxmax(), list(factors)].to_dict()
    chosen = {
        "rank (SettingModel)": top(),
        "rank, no pair term": top(pair=None),
        "Taguchi optimum": taguchi,
        "best observed": best_row,
    }
    regrets = {name: problem.regret(condition) for name, condition in chosen.items()}
    regrets["blind (grid mean)"] = problem.optimum() - problem.grid_mean()
    return regrets


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200, help="synthetic studies (default 200)")
    parser.add_argument("--noise", type=float, default=0.75, help="seed-noise sd (default 0.75)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = pd.DataFrame([picks(seed, args.noise) for seed in range(args.instances)])
    print(
        f"One L18 (18 evaluations) on {args.instances} synthetic studies, seed noise sd {args.noise}; "
        f"regret of the pick (lower is better)\n"
    )
    print("| pick | median | p90 | mean | share within 0.25 |")
    print("|---|---:|---:|---:|---:|")
    for name in table.columns:
        values = table[name].to_numpy()
        print(
            f"| {name} | {np.median(values):.3f} | {np.percentile(values, 90):.3f} | "
            f"{values.mean():.3f} | {np.mean(values <= 0.25):.0%} |"
        )
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
