"""Fewer images to a good setting: regret of each strategy's recommendation per budget.

Synthetic studies shaped like real ones (``qeuopt.testing.synthetic.make_problem``): two artist
slots with 3-9 artists each and a rank 1-2 pair interaction, strength and guidance at
five levels with smooth optima, an inert scheduler and steps (3 levels each), seed noise
sd 0.75 (an artist's own bias has sd 1). Grids hold 2,025 to 18,225 settings.

For every instance, budget and strategy, ``qeuopt.optimize`` runs on the same problem
with the same noise sequence, and the regret of ``.recommended`` is computed noise-free
(true value at the optimum minus true value of the recommendation). A row named
``tpe+model`` is TPE's evaluations with the SettingModel's pick instead of TPE's best
evaluated setting (``recommend="model"``), to separate the design from the model.

    python benchmarks/efficiency.py [--instances 50] [--budgets 9,18,36,72]
        [--strategies oa,auto,tpe,gp,random,full,tpe+model,random+model] [--jobs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process per core is faster than threads here

import numpy as np  # noqa: E402

from qeuopt.run.rounds import optimize  # noqa: E402
from qeuopt.testing.synthetic import make_problem  # noqa: E402

DEFAULT_STRATEGIES = "oa,auto,tpe,gp,random,full,tpe+model,random+model"


def one_run(task: tuple[str, int, int]) -> tuple[str, int, int, float, float]:
    """(strategy, budget, instance, regret, seconds); regret NaN where the strategy cannot run."""
    label, budget, instance = task
    strategy, _, recommend = label.partition("+")
    problem = make_problem(instance)
    if strategy == "full" and budget < problem.grid_size():
        return label, budget, instance, float("nan"), 0.0
    start = time.perf_counter()
    result = optimize(
        problem.factors,
        problem.evaluate,
        budget=budget,
        strategy=strategy,
        seed=instance,
        recommend=recommend or "auto",
    )
    return label, budget, instance, problem.regret(result.recommended), time.perf_counter() - start


def summarize(results, labels, budgets) -> list[str]:
    """Markdown table: median / p90 regret per strategy (rows) and budget (columns)."""
    lines = [
        "| strategy | " + " | ".join(f"budget {b}" for b in budgets) + " | s/run |",
        "|---|" + "---:|" * (len(budgets) + 1),
    ]
    best = {b: min(_median(results, label, b) for label in labels) for b in budgets}
    for label in labels:
        cells = []
        for b in budgets:
            values = [r for lab, bud, _, r, _ in results if lab == label and bud == b]
            if np.all(np.isnan(values)):
                cells.append("n/a (budget < grid)")
                continue
            mark = "**" if _median(results, label, b) == best[b] else ""
            cells.append(f"{mark}{np.median(values):.2f}{mark} / {np.percentile(values, 90):.2f}")
        seconds = [s for lab, _, _, r, s in results if lab == label and not np.isnan(r)]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.mean(seconds) if seconds else 0:.2f} |")
    return lines


def paired(results, labels, budgets, reference: str = "oa") -> list[str]:
    """Markdown table: mean over instances of (regret - the reference's regret), +- its
    standard error. Same problems and noise for both, so this is far less noisy than
    comparing medians; positive = the reference did better."""

    def regrets(label, budget):
        return {i: r for lab, bud, i, r, _ in results if lab == label and bud == budget}

    lines = [
        f"| strategy - {reference} | " + " | ".join(f"budget {b}" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for label in labels:
        if label == reference:
            continue
        cells = []
        for b in budgets:
            mine, base = regrets(label, b), regrets(reference, b)
            diff = np.array([mine[i] - base[i] for i in mine if i in base])
            diff = diff[~np.isnan(diff)]
            error = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
            cells.append("n/a" if diff.size < 2 else f"{diff.mean():+.2f} +- {error:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _median(results, label, budget) -> float:
    values = [r for lab, bud, _, r, _ in results if lab == label and bud == budget]
    return float(np.median(values)) if not np.all(np.isnan(values)) else float("inf")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=50, help="synthetic studies (default 50)")
    parser.add_argument("--budgets", default="9,18,36,72", help="comma-separated evaluation budgets")
    parser.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        help="comma-separated; 'name+model' uses the model's pick for a sampler's evaluations",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",")]
    labels = [s.strip() for s in args.strategies.split(",") if s.strip()]
    tasks = [(label, b, i) for label in labels for b in budgets for i in range(args.instances)]
    start = time.perf_counter()
    with multiprocessing.Pool(args.jobs) as pool:
        results = pool.map(one_run, tasks, chunksize=1)
    blind = [make_problem(i) for i in range(args.instances)]
    blind = [p.optimum() - p.grid_mean() for p in blind]
    print(
        f"Regret of .recommended, median / p90 over {args.instances} synthetic studies "
        f"(lower is better; bold = lowest median per budget). A blind pick loses "
        f"{np.median(blind):.2f} (median).\n"
    )
    print("\n".join(summarize(results, labels, budgets)))
    if "oa" in labels:
        print("\nPaired difference to oa (mean regret difference +- standard error; > 0: oa better)\n")
        print("\n".join(paired(results, labels, budgets)))
    print(f"\n{len(tasks)} runs in {time.perf_counter() - start:.0f} s with {args.jobs} processes")


if __name__ == "__main__":
    main()
