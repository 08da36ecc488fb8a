"""The CPU cost of one optuna-dashboard trial note as a study grows, side by side:
optuna-dashboard's ``save_note`` against qeuopt's ``save_trial_note``.

    python benchmarks/trial_notes.py [--trials 1000]

Each writer gets its own SQLite study; per trial, ``study.ask()``, one note with an MLflow
link like qeuopt's, ``study.tell``. Printed: the median CPU milliseconds of one note per
hundred trials, for both, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def note_costs(save, trials: int, folder: Path, name: str) -> dict[int, float]:
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{folder / name}.db")
    costs: dict[int, list[float]] = {}
    for i in range(trials):
        trial = study.ask()
        body = f"MLflow run: [{i:032x}](http://127.0.0.1:5000/#/experiments/1/runs/{i:032x})"
        start = time.process_time()
        save(trial, body)
        costs.setdefault(i // 100 * 100, []).append(1000 * (time.process_time() - start))
        study.tell(trial, 0.0)
    return {block: statistics.median(values) for block, values in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    import optuna
    from optuna_dashboard import save_note

    from qeuopt.run.upload import save_trial_note

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        theirs = note_costs(save_note, args.trials, Path(scratch), "dashboard")
        ours = note_costs(save_trial_note, args.trials, Path(scratch), "qeuopt")
    print(f"CPU ms per trial note, median per hundred trials ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    print(f"{'trials':>10} {'save_note':>10} {'qeuopt':>10} {'ratio':>7}")
    for block in sorted(theirs):
        print(
            f"{block:>5}-{block + 99:<4} {theirs[block]:>10.1f} {ours[block]:>10.1f} {theirs[block] / ours[block]:>7.1f}"
        )


if __name__ == "__main__":
    main()
