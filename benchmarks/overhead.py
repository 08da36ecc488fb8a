"""Whole processes, set-up included: `qeuopt run` of a study against plain scripts.

    python benchmarks/overhead.py                     # the demo study on the tiny model
    python benchmarks/overhead.py --repeat 5 --threads 1

Each variant is a fresh ``python`` process in a fresh folder; its CPU seconds (user +
system, from ``getrusage(RUSAGE_CHILDREN)`` around it) are what is compared. Variants
run alternated, in a rotated order each round, and each ratio is taken within a round
(paired), then the median and range over rounds are printed.

- ``qeuopt``: ``python -m qeuopt run study.toml`` (generation, CLIP, PNGs with metadata,
  labelled grid, per-image table, MLflow runs, Optuna storage, and the study's HTML
  report at the end);
- ``qeuopt no report``: the same with ``--no-report``, the job the plain scripts do;
- ``user script``: benchmarks/plain/user_script.py, the same job as a user would script
  it: one pipeline, batched grids, sentence-transformers CLIP, PNGs with metadata, one
  MLflow run per condition with its PNGs;
- ``generate only``: benchmarks/plain/generate_only.py, one pipeline, batched grids;
- ``generate only, gc tuned``: the same with ``--gc-tuned``, the garbage-collector settings
  the ``qeuopt`` command uses (qeuopt/heap.py) written into the plain script, to show how
  much of qeuopt's margin they are;
- ``generate only + job imports``: the same script with ``--job-libraries``: it also imports
  MLflow, sentence-transformers and Optuna and uses none of them, the floor of any tool
  that does the job with the libraries qeuopt is built on (the 1.3x target's own cost);
- ``notebook loop``: benchmarks/plain/notebook_loop.py, one pipeline, one call per image.

The plain scripts import nothing from qeuopt. Two settings of the folder: ``fresh`` (each
process creates its databases, as a first run does: MLflow migrates its schema, qeuopt
copies a migrated template) and ``db ready`` (mlflow.db, and qeuopt's optuna.db, made
before the process starts, as in every later run in a folder).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN = Path(__file__).resolve().parent / "plain"
sys.path.insert(0, str(ROOT))
VARIANTS = (
    "qeuopt",
    "qeuopt no report",
    "user script",
    "generate only",
    "generate only, gc tuned",
    "generate only + job imports",
    "notebook loop",
)
QEUOPT = VARIANTS[:2]
FLOOR = "generate only + job imports"


def write_job(spec, folder: Path) -> Path:
    """The study's conditions as plain data for the scripts that do not import qeuopt."""
    from qeuopt.run.condition import seeds_for
    from qeuopt.run.queue import design_rows
    from qeuopt.testing.tiny import resolve_model

    gen = spec.generation
    conditions = []
    for values in design_rows(spec):
        settings = spec.settings_for(values)
        conditions.append(
            {
                "prompt": spec.prompt.render(values),
                "strength": float(settings.strength),
                "guidance": float(settings.guidance),
                "seeds": seeds_for(settings),
            }
        )
    job = {
        "model": resolve_model(gen.model),
        "clip": resolve_model(spec.scoring.clip_model),
        "init_image": str(Path(spec.base_dir) / gen.init_image),
        "negative": spec.prompt.negative,
        "steps": gen.steps,
        "width": gen.width,
        "height": gen.height,
        "conditions": conditions,
    }
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    return path


def command(variant: str, study: Path, job: Path) -> list[str]:
    if variant in QEUOPT:
        return [sys.executable, "-m", "qeuopt", "run", str(study), "--quiet"] + (
            ["--no-report"] if variant == "qeuopt no report" else []
        )
    script, *flags = {  # each plain variant: its script in benchmarks/plain and its flags
        "user script": ["user_script.py"],
        "generate only": ["generate_only.py"],
        "generate only, gc tuned": ["generate_only.py", "--gc-tuned"],
        "generate only + job imports": ["generate_only.py", "--job-libraries"],
        "notebook loop": ["notebook_loop.py"],
    }[variant]
    return [sys.executable, str(PLAIN / script), str(job), *flags]


def prepare_databases(variant: str, folder: Path, env: dict) -> None:
    """``db ready``: the databases a variant would create on its first run, made now."""
    code = {
        "qeuopt": "import mlflow, optuna; mlflow.MlflowClient('sqlite:///mlflow.db').search_experiments();"
        "optuna.storages.RDBStorage('sqlite:///optuna.db')",
        "user script": "import mlflow; mlflow.MlflowClient('sqlite:///mlflow.db').search_experiments()",
    }
    key = "qeuopt" if variant in QEUOPT else variant
    if key in code:
        subprocess.run([sys.executable, "-c", code[key]], cwd=folder, env=env, check=True, capture_output=True)


def run_child(cmd: list[str], folder: Path, env: dict) -> tuple[float, str]:
    """The child's CPU seconds (user + system, every thread) and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stderr


def one_round(spec_file: Path, job: Path, env: dict, ready: bool, order: list[str]) -> dict[str, float]:
    seconds = {}
    for variant in order:
        folder = Path(tempfile.mkdtemp(prefix="qeuopt-overhead-"))
        try:
            for item in spec_file.parent.iterdir():  # the study and its init image
                if item.is_file():
                    shutil.copy(item, folder / item.name)
            if ready:
                prepare_databases(variant, folder, env)
            seconds[variant], _ = run_child(command(variant, folder / spec_file.name, job), folder, env)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return seconds


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(title: str, rounds: list[dict[str, float]]) -> None:
    print(f"\n{title}: CPU seconds per whole process, median (min-max) of {len(rounds)} rounds")
    for variant in VARIANTS:
        print(f"  {variant:<28}{spread([r[variant] for r in rounds]):>24}")
    pairs = [(ours, other) for ours in QEUOPT for other in VARIANTS[2:]]
    pairs.append((FLOOR, "generate only"))  # what the libraries' imports alone cost
    for ours, other in pairs:
        ratios = [r[ours] / r[other] for r in rounds]
        print(f"  {f'{ours} / {other}':<56} {spread(ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default=str(ROOT / "qeuopt" / "data" / "demo_tiny_l9.toml"))
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each runs every variant once")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for every variant")
    args = parser.parse_args()

    from qeuopt.config.load import load_study_file
    from qeuopt.testing.tiny import resolve_model

    spec_file = Path(args.study).resolve()
    spec = load_study_file(spec_file)
    resolve_model(spec.generation.model), resolve_model(spec.scoring.clip_model)  # built before timing
    scratch = Path(tempfile.mkdtemp(prefix="qeuopt-job-"))
    job = write_job(spec, scratch)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    n, k = len(json.loads(job.read_text())["conditions"]), spec.generation.images_per_condition
    print(
        f"study {spec.name}: {n} conditions x {k} images, model {spec.generation.model}, "
        f"{spec.generation.width}x{spec.generation.height}, {spec.generation.steps} steps, "
        f"OMP_NUM_THREADS={args.threads}, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})"
    )
    results = {True: [], False: []}
    for i in range(args.repeat):
        for ready in (False, True):
            # rotated: no variant always runs first
            order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
            results[ready].append(one_round(spec_file, job, env, ready, list(order)))
    shutil.rmtree(scratch, ignore_errors=True)
    report("fresh folder (first run: databases created)", results[False])
    report("db ready (databases made before the process)", results[True])
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
