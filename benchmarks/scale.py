"""Many workers on one study: throughput, coordination cost, and exactly once.

    python benchmarks/scale.py                         # 1, 4, 16, 64 workers, 256 rows, 0.5 s per grid
    python benchmarks/scale.py --workers 1 4 --rows 64 --seconds 0.5

A throw-away PostgreSQL (tests/servers.py; `make servers` installs Debian's) holds one
full-factorial study per run. Each worker is a separate process running qeuopt's one run
loop (:class:`qeuopt.run.loop.TrialLoop`: claim a WAITING row, heartbeat, tell, resume)
with a "generator" that only sleeps ``--seconds`` per condition (0.5 s by default, to keep
a run short; a GPU takes 2-4 s per grid, so real overhead ratios are 4-8 times smaller). MLflow, PNGs and scoring are left out on purpose: this measures what
sharing the queue costs, which is what grows with the number of workers.

Every worker imports, opens the study and waits at a start line; then all start at once.
Reported per run: wall (start to the last worker's exit), rows per second and the ideal
``workers / seconds``, coordination overhead per condition (worker time not spent in the
sleep, summed over workers, divided by rows: claims, heartbeats, tells, and waiting at
the end for the last rows), worker CPU per condition, PostgreSQL commits per condition,
start-up (launch until every worker stands at the start line), and the exactly-once
check (every row COMPLETE once; the rows the workers ran, counted by the workers
themselves, equal the design).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY = "scale"


def design(rows: int) -> tuple[dict, list[dict]]:
    """A full factorial of 4-level factors with at least ``rows`` rows, cut to ``rows``."""
    count = max(1, math.ceil(math.log(rows, 4)))
    levels = {f"f{k}": [f"l{v}" for v in range(4)] for k in range(count)}
    grid = [dict(zip(levels, combo)) for combo in itertools.product(*levels.values())][:rows]
    return levels, grid


def worker(url: str, rows: int, seconds: float, go: Path) -> None:
    """One worker process: drain the queue, print what it ran and its clock and CPU.
    It starts when ``go`` exists, so every worker has imported its libraries and opened
    the study by then (on 2 CPUs 64 processes take minutes to start, which is not what
    this measures; the start-up column reports it)."""
    from qeuopt.run.loop import TrialLoop
    from qeuopt.run.queue import open_study
    from qeuopt.track.store import database_lock

    levels, grid = design(rows)
    study = open_study(STUDY, url, "random", create=False)
    go.with_name(f"{go.name}.{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.05)
    ready, cpu_ready = time.time(), _cpu()
    ran, first = [], None

    def work(values, trial) -> float:
        nonlocal first
        first = first or time.time()
        ran.append(values)
        time.sleep(seconds)
        return 0.0

    loop = TrialLoop(
        study, levels, grid, lock=lambda: database_lock(url, f"qeuopt.optuna.{STUDY}"), say=lambda text: None
    )
    loop.drain(work)
    print(json.dumps({"ran": ran, "ready": ready, "first": first, "end": time.time(), "cpu": _cpu() - cpu_ready}))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def commits(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(
            "select xact_commit from pg_stat_database where datname = current_database()"
        ).fetchone()[0]


def one_run(server: str, workers: int, rows: int, seconds: float) -> dict:
    from qeuopt.run.loop import TrialLoop
    from qeuopt.run.queue import open_study
    from tests.servers import create_database, worker_env

    url = create_database(server, f"scale_{uuid.uuid4().hex[:8]}")
    levels, grid = design(rows)
    TrialLoop(open_study(STUDY, url, "random"), levels, grid).resume()  # `qeuopt init`: the queue, once
    go = Path(tempfile.mkdtemp(prefix="qeuopt-scale-")) / "go"
    command = [
        sys.executable,
        __file__,
        "--worker",
        url,
        "--rows",
        str(rows),
        "--seconds",
        str(seconds),
        "--go",
        str(go),
    ]
    launched = time.time()
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=worker_env()) for _ in range(workers)]
    while len(list(go.parent.glob("go.*"))) < workers:
        time.sleep(0.1)
    startup = time.time() - launched
    before = commits(url)
    go.touch()
    outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    after = commits(url)
    shutil.rmtree(go.parent)

    ran = [values for out in outputs for values in out["ran"]]
    key = lambda values: tuple(sorted(values.items()))
    study = open_study(STUDY, url, "random", create=False)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    once = (
        Counter(map(key, ran)) == Counter(map(key, grid))
        and len(study.trials) == rows
        and Counter(key(t.params) for t in complete) == Counter(map(key, grid))
    )
    start = min(o["ready"] for o in outputs)
    wall = max(o["end"] for o in outputs) - start
    busy = sum(o["end"] - o["ready"] for o in outputs)
    return {
        "workers": workers,
        "rows": rows,
        "seconds": seconds,
        "wall": wall,
        "rows_per_s": rows / wall,
        "ideal_rows_per_s": workers / seconds,
        "overhead_per_row": (busy - rows * seconds) / rows,
        "cpu_per_row": sum(o["cpu"] for o in outputs) / rows,
        "commits_per_row": (after - before) / rows,
        "startup": startup,
        "exactly_once": once,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=0.5, help="sleep per condition (a GPU's 2-4 s per grid)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run as one worker on this URL
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)  # internal: start when this file exists
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.rows, args.seconds, args.go)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the database server on the way out
    from tests.servers import postgres_missing, postgres_server

    if postgres_missing():
        print(f"scale: {postgres_missing()}", file=sys.stderr)
        return 1
    print(f"{args.rows} rows, {args.seconds} s per condition, PostgreSQL on 127.0.0.1, {os.cpu_count()} CPUs")
    print("workers  wall_s  rows/s  ideal  efficiency  overhead_ms/row  cpu_ms/row  commits/row  start-up_s  once")
    with postgres_server() as server:
        for n in args.workers:
            r = one_run(server, n, args.rows, args.seconds)
            print(
                f"{n:7d}  {r['wall']:6.1f}  {r['rows_per_s']:6.2f}  {r['ideal_rows_per_s']:5.1f}  "
                f"{r['rows_per_s'] / r['ideal_rows_per_s']:10.0%}  {1000 * r['overhead_per_row']:15.0f}  "
                f"{1000 * r['cpu_per_row']:10.0f}  {r['commits_per_row']:11.1f}  {r['startup']:10.1f}  "
                f"{'yes' if r['exactly_once'] else 'NO'}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
