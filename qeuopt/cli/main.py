"""The ``qeuopt`` command. Heavy libraries load only inside the command that needs them,
so ``qeuopt --help`` stays quick."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from qeuopt.cli.analysis import add_analysis_commands
from qeuopt.cli.ratings import add_rating_commands
from qeuopt.errors import QeuoptError, StudyError

DEMO_STUDY = "demo_tiny_l9.toml"


DEMO_FILES = (DEMO_STUDY, "sketch.png")  # shipped as package data in qeuopt/data


def _demo_study(folder: Path) -> Path:
    """The demo study, copied from the installed package into ``folder`` (kept if there,
    so a user's edits survive), because a study's files belong beside the user's results."""
    from importlib import resources

    folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        if not (folder / name).exists():
            (folder / name).write_bytes(resources.files("qeuopt.data").joinpath(name).read_bytes())
    return folder / DEMO_STUDY


def _library_progress_bars_off() -> None:
    """Model loading bars of transformers/diffusers would bury the study's own bar."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by transformers on import
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()


def cmd_validate(args) -> int:
    from qeuopt.run.study import Study

    study = Study.from_file(args.study)
    print(f"{args.study}: valid ({len(study.spec.space.factors)} factors, design {study.spec.design.kind})")
    return 0


def _study_with_stores(args):
    """The study file, with the stores its options (then the environment) name instead."""
    from qeuopt.run.study import Study

    study = Study.from_file(args.study)
    return study.use_stores(getattr(args, "optuna_storage", None), getattr(args, "tracking_uri", None))


def cmd_init(args) -> int:
    from qeuopt.track.store import masked

    study = _study_with_stores(args)
    waiting = study.init()
    tracking = study.spec.tracking
    print(f"{study.name}: ready, {waiting} condition(s) to run; Optuna {masked(study.optuna_url)}, "
          f"MLflow {masked(tracking.mlflow_uri)}. Start workers with `qeuopt worker {args.study}`")
    return 0


def cmd_run(args) -> int:
    study = _study_with_stores(args)
    _library_progress_bars_off()
    start = time.perf_counter()
    summary = study.run(progress=not args.quiet, wait_s=getattr(args, "wait", None),
                        create=not getattr(args, "worker", False))
    wall = time.perf_counter() - start
    t = summary.timings
    print(f"{study.name}: {summary.ran} condition(s) generated this run, {summary.total} complete in all")
    if summary.best_condition is not None:
        value = "mean CLIP cosine" if study.spec.design.objective == "clip" else study.spec.design.objective
        print(f"best {value} {summary.best_value:.4f} at {summary.best_condition}")
    if summary.recommended is not None:
        print(f"recommended (the models' pick, possibly never generated): {summary.recommended}")
    print(f"wall {wall:.1f} s: generate {t.generate:.1f} s, score {t.score:.1f} s, log {t.log:.1f} s, "
          f"other in conditions {t.other:.1f} s, set-up {wall - t.timed() - t.other:.1f} s")
    if summary.unfinished:
        print(f"qeuopt: not finished: {len(summary.unfinished)} condition(s) still held by other workers: "
              + "; ".join(summary.unfinished) + ". Run again to wait for them", file=sys.stderr)
        return 3
    return 0


def _worker_options(parser, worker_flag: bool) -> None:
    parser.add_argument("--optuna-storage", help="Optuna storage URL (default: $QEUOPT_OPTUNA_STORAGE, "
                        "then the study file), e.g. postgresql://user:pw@host/db")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                        "then the study file), e.g. http://mlflow-host:5000")
    if worker_flag:
        parser.add_argument("--worker", action="store_true", help="join a study created by `qeuopt init` "
                            "(fails if it does not exist rather than creating it)")
    parser.add_argument("--wait", type=float, metavar="SECONDS", help="stop waiting for conditions other "
                        "workers hold after this long (default: wait until they finish or die); exit 3 then")


def cmd_demo(args) -> int:
    args.study = str(_demo_study(Path(args.folder)))
    print(f"demo study: {args.study}")
    return cmd_run(args)


def cmd_ui(args) -> int:
    uri = args.backend_store_uri
    if args.study:
        from qeuopt.config.load import load_study_file

        uri = load_study_file(args.study).tracking.mlflow_uri
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C stops it)")
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qeuopt", description="Designed experiments for Stable Diffusion.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a study file (resumes: complete conditions are skipped)")
    run.add_argument("study", help="path to a study TOML file")
    run.add_argument("--quiet", action="store_true", help="no line per condition")
    _worker_options(run, worker_flag=True)
    run.set_defaults(func=cmd_run)

    init = commands.add_parser("init", help="create a study's Optuna queue and MLflow experiment once, "
                               "before starting workers on several GPUs or machines")
    init.add_argument("study")
    _worker_options(init, worker_flag=False)
    init.set_defaults(func=cmd_init, wait=None)

    worker = commands.add_parser("worker", help="work on a study created by `qeuopt init` (one per GPU)")
    worker.add_argument("study")
    worker.add_argument("--quiet", action="store_true", help="no line per condition")
    _worker_options(worker, worker_flag=False)
    worker.set_defaults(func=cmd_run, worker=True)

    demo = commands.add_parser("demo", help="run the demo study on the tiny offline model")
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument("--folder", default="demo", help="where the demo study file is written (default ./demo)")
    demo.set_defaults(func=cmd_demo)

    validate = commands.add_parser("validate", help="check a study file without loading any model")
    validate.add_argument("study")
    validate.set_defaults(func=cmd_validate)

    ui = commands.add_parser("ui", help="the MLflow dashboard for the runs in this folder")
    ui.add_argument("--study", help="take the MLflow URI from this study file")
    ui.add_argument("--backend-store-uri", default="sqlite:///mlflow.db")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)

    add_rating_commands(commands)  # rate, ratings export|import|scores, steer
    add_analysis_commands(commands)  # analyze, recommend, export
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudyError as err:
        print(f"qeuopt: invalid study: {err}", file=sys.stderr)
        return 2
    except QeuoptError as err:
        print(f"qeuopt: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qeuopt: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
