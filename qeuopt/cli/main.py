"""The ``qeuopt`` command. Heavy libraries load only inside the command that needs them,
so ``qeuopt --help`` stays quick."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from qeuopt.cli.analysis import add_analysis_commands
from qeuopt.cli.ratings import add_rating_commands
from qeuopt.cli.ui import cmd_ui
from qeuopt.errors import InputError, QeuoptError, StudyError, failure_message, interrupted
from qeuopt.heap import defer_collection, freeze_before_exit

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


def _checked_study(path: str):
    """The study of a file, checked with everything it will use on this machine (databases,
    folders, models), so every problem is reported at once and before anything exists."""
    from qeuopt.config.load import load_study_file
    from qeuopt.run.study import Study

    return Study.from_spec(load_study_file(path, environment=True))


def cmd_validate(args) -> int:
    study = _checked_study(args.study)
    print(f"{args.study}: valid ({len(study.spec.space.factors)} factors, design {study.spec.design.kind})")
    return 0


def _study_with_stores(args):
    """The study file, with the stores its options (then the environment) name instead."""
    from qeuopt.config.environment import require_environment

    study = _checked_study(args.study)
    study.use_stores(getattr(args, "optuna_storage", None), getattr(args, "tracking_uri", None))
    require_environment(study.spec, generation_model=False, clip_model=False)  # the stores in force
    return study


def cmd_init(args) -> int:
    from qeuopt.track.store import masked

    study = _study_with_stores(args)
    waiting = study.init()
    tracking = study.spec.tracking
    print(
        f"{study.name}: ready, {waiting} condition(s) to run; Optuna {masked(study.optuna_url)}, "
        f"MLflow {masked(tracking.mlflow_uri)}, ratings {masked(tracking.ratings_store)}. "
        f"Start workers with `qeuopt worker {args.study}`"
    )
    return 0


def cmd_run(args) -> int:
    study = _study_with_stores(args)
    if getattr(args, "fresh", False):
        from qeuopt.run.fingerprint import start_over

        print(start_over(study))
    from qeuopt.generate.noise import third_party_noise_off

    third_party_noise_off(progress_bars=False)  # warnings a user cannot act on; bars when a model loads
    start = time.perf_counter()
    summary = study.run(
        progress=not args.quiet, wait_s=getattr(args, "wait", None), create=not getattr(args, "worker", False)
    )
    wall = time.perf_counter() - start
    t = summary.timings
    print(f"{study.name}: {summary.ran} condition(s) generated this run, {summary.total} complete in all")
    if summary.best_condition is not None:
        value = "mean CLIP cosine" if study.spec.design.objective == "clip" else study.spec.design.objective
        print(f"best {value} {summary.best_value:.4f} at {summary.best_condition}")
    if summary.recommended is not None:
        print(f"recommended (the models' pick, possibly never generated): {summary.recommended}")
    warmup = f" (compile warm-up {t.warmup:.1f} s)" if t.warmup else ""
    print(
        f"wall {wall:.1f} s, set-up included; the pipeline rendered {t.busy():.1f} s of it{warmup}. "
        f"Beside it, summed over the lanes: score {t.score:.1f} s, log {t.log:.1f} s, waiting for the "
        f"writer {t.wait:.1f} s, other {t.other:.1f} s; files and artifacts {t.write:.1f} s on the writer"
    )
    if summary.unfinished:
        print(
            f"qeuopt: not finished: {len(summary.unfinished)} condition(s) still held by other workers: "
            + "; ".join(summary.unfinished)
            + ". Run again to wait for them",
            file=sys.stderr,
        )
        return 3
    report = None if getattr(args, "no_report", False) or not summary.total else _report_after_run(study, args.study)
    print(next_steps(study, args.study, report))
    return 0


def _report_after_run(study, path: str):
    """The study report, written after every run; a study that cannot be analysed yet (too
    few conditions, ratings still to come) says why instead of failing the run."""
    from qeuopt.recommend.report import write_report

    try:
        return write_report(study, study_path=path)
    except QeuoptError as err:
        print(f"study report not written yet: {err}")
        return None


def next_steps(study, path: str, report) -> str:
    """Where the files are and the commands that come next, with this study's path."""
    from qeuopt.run.condition import condition_folder

    folder = condition_folder(study.spec, 0).parent
    lines = [f"images: {folder}/c*/ (one PNG per image with A1111 metadata, and grid.png)"]
    if report is not None:
        lines.append(f"study report: {report} (open it in a browser)")
    me = command_name()
    lines += [
        "next:",
        f"  {me} ui --study {path}        # MLflow: every condition, image and score",
        f"  {me} rate {path}              # rate the images in your browser",
        f"  {me} analyze {path}           # factor effects, ANOVA, the optimum",
        f"  {me} recommend {path}         # the best settings, including untried ones",
    ]
    return "\n".join(lines)


def command_name() -> str:
    """How to call qeuopt from this shell: ``qeuopt`` when it is on PATH (an active venv),
    else the way this process was started (``make demo`` runs ``.venv/bin/qeuopt``), so a
    printed command is never "command not found"."""
    import os
    import shutil

    if shutil.which("qeuopt"):
        return "qeuopt"
    if Path(sys.argv[0]).name == "qeuopt":
        return os.path.relpath(os.path.abspath(sys.argv[0]))
    return f"{sys.executable} -m qeuopt"


def _worker_options(parser, worker_flag: bool) -> None:
    parser.add_argument(
        "--optuna-storage",
        help="Optuna storage URL (default: $QEUOPT_OPTUNA_STORAGE, "
        "then the study file), e.g. postgresql://user:pw@host/db",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, then the study file), e.g. http://mlflow-host:5000",
    )
    if worker_flag:
        parser.add_argument(
            "--worker",
            action="store_true",
            help="join a study created by `qeuopt init` (fails if it does not exist rather than creating it)",
        )
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="stop waiting for conditions other "
        "workers hold after this long (default: wait until they finish or die); exit 3 then",
    )


def cmd_demo(args) -> int:
    args.study = str(_demo_study(Path(args.folder)))
    print(f"demo study: {args.study}")
    return cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qeuopt", description="Designed experiments for Stable Diffusion.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a study file (resumes: complete conditions are skipped)")
    run.add_argument("study", help="path to a study TOML file")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start the study over: delete its trials, condition "
        "folders and MLflow runs (its ratings are saved to a CSV first, then removed)",
    )
    run.add_argument("--no-report", action="store_true", help="do not write the study report at the end")
    _worker_options(run, worker_flag=True)
    run.set_defaults(func=cmd_run)

    init = commands.add_parser(
        "init",
        help="create a study's Optuna queue and MLflow experiment once, "
        "before starting workers on several GPUs or machines",
    )
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
    demo.add_argument("--no-report", action="store_true", help="do not write the study report at the end")
    demo.add_argument("--folder", default="demo", help="where the demo study file is written (default ./demo)")
    demo.set_defaults(fresh=False)
    demo.set_defaults(func=cmd_demo)

    validate = commands.add_parser("validate", help="check a study file without loading any model")
    validate.add_argument("study")
    validate.set_defaults(func=cmd_validate)

    ui = commands.add_parser("ui", help="the MLflow dashboard for the runs in this folder")
    ui.add_argument("--study", help="take the MLflow URI from this study file")
    ui.add_argument("--backend-store-uri", default="sqlite:///mlflow.db")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument(
        "--workers", type=int, default=1, help="server processes (default 1: one person's dashboard starts faster)"
    )
    ui.set_defaults(func=cmd_ui)

    add_rating_commands(commands)  # rate, ratings export|import|scores, steer
    add_analysis_commands(commands)  # analyze, recommend, export
    return parser


GENERATING = ("run", "worker", "demo", "steer")  # the commands that load a pipeline


def entry() -> int:
    """The ``qeuopt`` process: :func:`main` with the collector settings of a process that
    ends with its command (see qeuopt/heap.py); callers of ``main()`` keep their own."""
    argv = sys.argv[1:]
    if argv[:1] and argv[0] in GENERATING:
        defer_collection()  # until the pipeline is loaded
    try:
        return main(argv)
    finally:
        freeze_before_exit()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudyError as err:
        print(f"qeuopt: invalid study: {err}", file=sys.stderr)
        return 2
    except InputError as err:
        print(f"qeuopt: {err}", file=sys.stderr)
        return 2
    except QeuoptError as err:
        print(f"qeuopt: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qeuopt: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a failing disk or database: one line, not a traceback
        if interrupted(err):  # Ctrl-C inside Optuna's bookkeeping surfaces as another error
            print("qeuopt: interrupted; run the same command again to resume", file=sys.stderr)
            return 130
        message = failure_message(err)
        if message is None:
            raise
        print(f"qeuopt: {message}; run the same command again to resume once it is fixed", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(entry())
