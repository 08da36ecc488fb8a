"""What Python's garbage collector costs a `qeuopt run`, with and without qeuopt/heap.py.

    OMP_NUM_THREADS=1 python benchmarks/collector.py [--repeat 2]

Runs ``qeuopt run --no-report`` of the demo study (tiny model) in a fresh folder, as a
fresh process, in two modes, alternated: ``default`` (the heap settings made no-ops, so
the collector runs as in any Python program) and ``qeuopt`` (the command as shipped).
``gc.callbacks`` time every collection in the process; the collections at exit are the
process's CPU (``getrusage`` of the child, as ``overhead.py`` measures it) minus its CPU
when its last ``atexit`` handler ran. Printed per mode: full (generation 2) collections, their CPU, the young ones' CPU,
the exit's CPU and the whole process's CPU, median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from overhead import run_child  # the same CPU measure as the whole-process benchmark

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "qeuopt" / "data"

CHILD = """
import atexit, gc, json, sys, time
spent = {0: 0.0, 1: 0.0, 2: 0.0}
full = [0]
started = [0.0]
def timing(phase, info):
    if phase == "start":
        started[0] = time.process_time()
    else:
        spent[info["generation"]] += time.process_time() - started[0]
        full[0] += info["generation"] == 2
def report():  # registered first, so it runs last
    print(json.dumps({"full": full[0], "full_s": spent[2], "young_s": spent[0] + spent[1],
                      "at_exit_cpu": time.process_time()}), file=sys.stderr)
atexit.register(report)
gc.callbacks.append(timing)
from qeuopt import heap
if sys.argv[1] == "default":
    heap.defer_collection = heap.setup_done = heap.freeze_before_exit = lambda: None
import importlib
cli = importlib.import_module("qeuopt.cli.main")
sys.argv = ["qeuopt", "run", "demo_tiny_l9.toml", "--quiet", "--no-report"]
cli.entry()
"""


def one(mode: str, env: dict) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="qeuopt-gc-"))
    try:
        for name in ("demo_tiny_l9.toml", "sketch.png"):
            shutil.copy(DATA / name, folder / name)
        total, stderr = run_child([sys.executable, "-c", CHILD, mode], folder, env)
        stats = json.loads(stderr.strip().splitlines()[-1])
        stats["exit_s"] = total - stats.pop("at_exit_cpu")
        stats["total_s"] = total
        return stats
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict]] = {"default": [], "qeuopt": []}
    for i in range(args.repeat):
        for mode in ("default", "qeuopt") if i % 2 == 0 else ("qeuopt", "default"):
            results[mode].append(one(mode, env))
    print(f"median of {args.repeat} runs per mode, CPU seconds")
    print(f"{'mode':<10}{'full':>6}{'full s':>9}{'young s':>9}{'exit s':>9}{'total s':>9}")
    for mode, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{mode:<10}{med['full']:>6.0f}{med['full_s']:>9.2f}{med['young_s']:>9.2f}"
            f"{med['exit_s']:>9.2f}{med['total_s']:>9.2f}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
