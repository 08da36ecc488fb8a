"""Search on worlds qeuopt's model was not built for, against Optuna's samplers, in one run.

Families (``families.py``; fixed before any run, none used for tuning): ``own`` (the
model's own family, labelled so), ``fullrank``, ``numeric``, ``plateau`` (mis-specified
synthetic worlds) and ``agiqa`` / ``agiqa-sd15`` (real human ratings replayed, see
``agiqa_replay.py``). Every strategy runs on the same instances with the same noise
sequence. ``auto`` (qeuopt's default) and ``oa`` run once per budget (their rounds
depend on it); Optuna's samplers run once at the largest budget and are scored at each
budget on their first trials (a sampler does not know the budget, so that is the run it
would have made). Regret = true optimum - true value of ``.recommended`` (noise-free);
the samplers recommend their best evaluated setting.

Printed per family: median regret per strategy and budget; the paired difference
``auto - best Optuna sampler`` (the sampler with the lowest median at that budget),
mean +- standard error over instances and its median, and the share of instances where
auto did strictly better / worse.

    python benchmarks/worlds.py [--instances 50] [--budgets 18,36,72]
        [--families own,fullrank,numeric,plateau,agiqa,agiqa-sd15]
        [--strategies auto,tpe,gp,random] [--jobs 2] [--first-instance 0]

Instances 0..49 are the evaluation set; changes to ``auto`` were developed on instances
1000 and up (``--first-instance 1000``), so the evaluation instances were not tuned on.

The default (4 instances) takes a few minutes; the README numbers used --instances 50.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import pandas as pd
from families import make_world

from qeuopt.run.rounds import SAMPLERS, optimize

FAMILIES = "own,fullrank,numeric,plateau,agiqa,agiqa-sd15"
OPTUNA = ("tpe", "gp", "random")


def best_of_prefix(history: pd.DataFrame, names: list[str], n: int) -> dict:
    """The best evaluated setting among the first ``n`` trials (replicates averaged)."""
    prefix = history.iloc[:n]
    means = prefix.groupby(names, sort=False)["value"].mean()
    return dict(zip(names, means.idxmax() if len(names) > 1 else (means.idxmax(),)))


def one_run(task):
    """[(family, strategy, budget, instance, regret, seconds)] for one run."""
    family, strategy, budgets, instance = task
    world = make_world(family, instance)
    rows = []
    for budget in [max(budgets)] if strategy in SAMPLERS else budgets:
        world.reset_noise()
        start = time.perf_counter()
        result = optimize(world.factors, world.evaluate, budget=budget, strategy=strategy, seed=instance)
        seconds = time.perf_counter() - start
        if strategy in SAMPLERS:  # one run at the largest budget, scored on its prefixes
            names = list(world.factors)
            for b in budgets:
                pick = best_of_prefix(result.history, names, b)
                rows.append((family, strategy, b, instance, world.regret(pick), seconds * b / budget))
            return rows
        rows.append((family, strategy, budget, instance, world.regret(result.recommended), seconds))
    return rows


def family_report(frame: pd.DataFrame, family: str, budgets: list[int]) -> list[str]:
    data = frame[frame["family"] == family]
    blind = float(np.median([_blind(make_world(family, i)) for i in sorted(data["instance"].unique())]))
    median = data.groupby(["strategy", "budget"])["regret"].median().unstack("budget")
    title = (
        f"### {family}{' (the model’s own family)' if family == 'own' else ''}: "
        f"{data['instance'].nunique()} instances, blind pick regret {blind:.3f}"
    )
    lines = [
        title,
        "",
        "| strategy | " + " | ".join(f"{b}" for b in budgets) + " | s/run |",
        "|---|" + "---:|" * (len(budgets) + 1),
    ]
    seconds = data.groupby("strategy")["seconds"].mean()
    for strategy in median.index:
        cells = [f"{median.loc[strategy, b]:.3f}" for b in budgets]
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {seconds[strategy]:.1f} |")
    lines += [
        "",
        "| auto - best Optuna sampler | " + " | ".join(f"{b}" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    cells = [_paired_cell(data, median, b) for b in budgets]
    lines.append("| mean +- se / median / auto better:worse | " + " | ".join(cells) + " |")
    return lines + [""]


def _paired_cell(data: pd.DataFrame, median: pd.DataFrame, budget: int) -> str:
    samplers = [s for s in OPTUNA if s in median.index]
    if "auto" not in median.index or not samplers:
        return "n/a"
    rival = min(samplers, key=lambda s: median.loc[s, budget])
    wide = data[data["budget"] == budget].pivot(index="instance", columns="strategy", values="regret")
    diff = (wide["auto"] - wide[rival]).dropna().to_numpy()
    se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
    return (
        f"{diff.mean():+.3f} +- {se:.3f} vs {rival} / {np.median(diff):+.3f} / "
        f"{np.mean(diff < 0):.0%}:{np.mean(diff > 0):.0%}"
    )


def summary(frame: pd.DataFrame) -> list[str]:
    """Over every (family, budget) cell: how often each strategy's median regret is at most
    (and strictly under) the best of Optuna's other samplers there, the yardstick the issue
    sets for auto, applied to every strategy alike; then auto against each sampler alone."""
    median = frame.groupby(["family", "budget", "strategy"])["regret"].median().unstack("strategy")
    samplers = [s for s in OPTUNA if s in median.columns]
    lines = [
        f"### Every family and budget: {len(median)} cells",
        "",
        "| strategy | median <= best other Optuna sampler | strictly lower |",
        "|---|---:|---:|",
    ]
    for strategy in median.columns:
        rival = median[[s for s in samplers if s != strategy]].min(axis=1)
        lines.append(
            f"| {strategy} | {int((median[strategy] <= rival).sum())} | {int((median[strategy] < rival).sum())} |"
        )
    if "auto" in median.columns:
        lines += ["", "| auto against | auto lower | tied | auto higher |", "|---|---:|---:|---:|"]
        for sampler in samplers:
            diff = median["auto"] - median[sampler]
            lines.append(
                f"| {sampler} | {int((diff < 0).sum())} | {int((diff == 0).sum())} | {int((diff > 0).sum())} |"
            )
    return lines + [""]


def _blind(world) -> float:
    return world.optimum() - world.grid_mean()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=4, help="instances per family (default 4)")
    parser.add_argument(
        "--first-instance",
        type=int,
        default=0,
        help="first instance seed (default 0); development used 1000 and up, the reported tables 0..49",
    )
    parser.add_argument("--budgets", default="18,36,72", help="comma-separated evaluation budgets")
    parser.add_argument("--families", default=FAMILIES, help=f"comma-separated, from {FAMILIES}")
    parser.add_argument("--strategies", default="auto,tpe,gp,random", help="qeuopt.optimize strategies")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--csv", help="also write every run's regret to this CSV file, as runs finish")
    parser.add_argument(
        "--resume", action="store_true", help="keep the --csv file and run only what it does not hold yet"
    )
    parser.add_argument("--report", metavar="CSV", help="print the tables from a CSV written by --csv; run nothing")
    args = parser.parse_args(argv)
    if args.report:
        frame = pd.read_csv(args.report)
        complete = frame.groupby("instance")["strategy"].count()
        frame = frame[frame["instance"].isin(complete[complete == complete.max()].index)]  # whole instances only
        budgets = sorted(frame["budget"].unique().tolist())
        print(f"Command: python benchmarks/worlds.py --report {args.report}\n")
        for family in frame["family"].unique():
            print("\n".join(family_report(frame, family, budgets)))
        print("\n".join(summary(frame)))
        return
    budgets = sorted(int(b) for b in args.budgets.split(","))
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    instances = range(args.first_instance, args.first_instance + args.instances)
    tasks = [(f, s, budgets, i) for i in instances for f in families for s in strategies]
    # instance by instance, so a run cut short still holds whole instances (see --report)
    tasks.sort(key=lambda t: (t[3], t[1] not in ("auto", "gp")))
    start, rows = time.perf_counter(), []
    columns = ["family", "strategy", "budget", "instance", "regret", "seconds"]
    if args.resume and not (args.csv and os.path.exists(args.csv)):
        parser.error(f"--resume: an existing --csv file is needed; given {args.csv!r}")
    if args.resume:  # a task is done when the file holds a row for each of its budgets
        rows = pd.read_csv(args.csv).values.tolist()
        held = {(r[0], r[1], int(r[3]), int(r[2])) for r in rows}
        tasks = [t for t in tasks if not all((t[0], t[1], t[3], b) in held for b in budgets)]
        print(f"--resume: {len(rows)} rows kept, {len(tasks)} runs to go", file=sys.stderr)
    elif args.csv:
        pd.DataFrame(columns=columns).to_csv(args.csv, index=False)
    with multiprocessing.Pool(args.jobs) as pool:
        for chunk in pool.imap_unordered(one_run, tasks, chunksize=1):
            rows += chunk
            if args.csv:
                pd.DataFrame(chunk, columns=columns).to_csv(args.csv, mode="a", header=False, index=False)
    frame = pd.DataFrame(rows, columns=columns)
    print("Command: python benchmarks/worlds.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(
        f"Median regret of .recommended (lower is better), per family and budget; "
        f"{time.perf_counter() - start:.0f} s with {args.jobs} processes\n"
    )
    for family in families:
        print("\n".join(family_report(frame, family, budgets)))
    print("\n".join(summary(frame)))


if __name__ == "__main__":
    main()
