"""The rating commands of ``qeuopt``: rate, ratings export|import|scores|preferences, steer.

Registered by :func:`add_rating_commands`; like the rest of the CLI, nothing heavy is
imported until a command runs.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import webbrowser
from pathlib import Path

from qeuopt.ratings.csvfile import CSV_COLUMNS
from qeuopt.ratings.store import WEIGHTS
from qeuopt.track.schema import CLIP_MEAN, TRIAL_TAG, column

DEFAULT_PORT = 8765


def _study(path: str):
    from qeuopt.run.study import Study

    return Study.from_file(path)


def _start_server(study, args, page: str = ""):
    from qeuopt.ratings.server import RatingServer

    server = RatingServer(study, args.host, args.port).start()
    print(f"rating page for {study.name}: {server.url}{page}  (Ctrl-C stops it; every acknowledged rating is saved)")
    if not args.no_browser:
        webbrowser.open(server.url + page)
    return server


def _require_conditions(study) -> None:
    """Rating a study with no finished condition would serve an empty page: say so instead,
    and create no database on the way."""
    from qeuopt.config.checks import sqlite_file
    from qeuopt.errors import NoDataError
    from qeuopt.ratings.catalog import Catalog

    path = sqlite_file(study.spec.tracking.mlflow_uri)
    if (path is not None and not Path(path).is_file()) or not Catalog(study).known():
        raise NoDataError(
            f"`study`: {study.name!r} has no finished condition to rate yet; run it first (`qeuopt run STUDY`)"
        )


def cmd_rate(args) -> int:
    study = _study(args.study)
    _require_conditions(study)
    server = _start_server(study, args)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping: copying the last ratings to MLflow")
    finally:
        server.stop()
    return 0


def cmd_ratings_export(args) -> int:
    from qeuopt.ratings.csvfile import write_ratings_csv
    from qeuopt.ratings.store import store_for

    study = _study(args.study)
    with store_for(study.spec) as store:
        rows = store.rows(study.name)
    if args.output:
        with open(args.output, "w", newline="", encoding="utf-8") as out:
            count = write_ratings_csv(rows, out)
    else:
        count = write_ratings_csv(rows, sys.stdout)
    print(f"{count} rating(s) of {study.name} exported", file=sys.stderr)
    return 0


def cmd_import(args) -> int:
    from qeuopt.ratings.catalog import Catalog
    from qeuopt.ratings.csvfile import read_csv
    from qeuopt.ratings.store import store_for
    from qeuopt.ratings.sync import sync_outbox

    study = _study(args.study)
    text = _csv_text(args.csv)  # before the catalog opens any database
    _require_conditions(study)
    catalog = Catalog(study)
    rows = read_csv(io.StringIO(text, newline=""), study.name, catalog.known())
    with store_for(study.spec) as store:
        changed = store.import_rows(rows)
        synced = sync_outbox(store, study.tracker(), study.name, catalog.run_ids())
    print(
        f"{len(rows)} row(s) read, {changed} stored (older than a stored rating: kept the stored one), "
        f"{synced} condition run(s) updated in MLflow"
    )
    return 0


def _csv_text(path: Path) -> str:
    """The CSV as text: UTF-8, with the byte-order mark spreadsheet programs write removed;
    a byte that is not UTF-8 is named with its line."""
    from qeuopt.errors import RatingError

    try:
        data = path.read_bytes()
    except OSError as err:
        raise RatingError(f"`csv`: cannot read {str(path)!r}: {err.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise RatingError(
            f"`csv`: {str(path)!r} is not UTF-8: line {line} has byte {data[err.start]:#04x}; "
            "save it as UTF-8 (CSV UTF-8 in a spreadsheet program)"
        ) from None


def cmd_scores(args) -> int:
    """Per-condition rating, CLIP and combined scores; also logged to the condition runs."""
    from qeuopt.ratings.store import condition_scores, store_for

    study = _study(args.study)
    runs = study.runs()
    if not len(runs):
        print(f"{study.name}: no condition runs yet")
        return 0
    numbers = runs[column("tags", TRIAL_TAG)].astype(int)
    clip = dict(zip(numbers, runs[column("metrics", CLIP_MEAN)]))
    with store_for(study.spec) as store:
        scores = condition_scores(
            store.frame(study.name), clip, {"rating": args.rating_weight, "clip": 1.0 - args.rating_weight}
        )
        revision = store.revision(study.name)
    tracker, run_ids = study.tracker(), dict(zip(numbers, runs["run_id"]))
    for number, row in scores.dropna(subset=["combined"]).iterrows():
        tracker.log(run_ids[number], metrics={"rating_z": row["rating_z"], "combined": row["combined"]}, step=revision)
    print(scores.sort_values("combined", ascending=False).to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_preferences(args) -> int:
    """Per-condition Bradley-Terry scores of the pairwise choices; also written to MLflow."""
    from qeuopt.ratings.preferences import preference_scores, preference_store_for, sync_preferences

    study = _study(args.study)
    runs = study.runs()
    run_ids = dict(zip(runs[column("tags", TRIAL_TAG)].astype(int), runs["run_id"])) if len(runs) else {}
    with preference_store_for(study.spec) as store:
        choices = store.choices(study.name)
        sync_preferences(store, study.tracker(), study.name, run_ids)
    scores = preference_scores(choices, sorted(run_ids))
    print(f"{study.name}: {len(choices)} choice(s); score = Bradley-Terry log strength, 95% interval")
    print(scores.sort_values("preference_score", ascending=False).to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_steer(args) -> int:
    from qeuopt.run.steer import advance

    study = _study(args.study)
    if study.spec.design.objective not in ("rating", "combined", "preference"):
        from qeuopt.errors import StudyError

        raise StudyError(
            [
                f"`design.objective`: rating, combined or preference is needed to steer by people; "
                f"given {study.spec.design.objective!r}"
            ],
            args.study,
        )
    from qeuopt.config.environment import require_environment

    require_environment(study.spec)  # models, databases and folders, before the first trial
    generator, scorer, store = study.default_generator(), study.default_scorer(), _steer_store(study.spec)
    server, seen = _start_server(study, args, "pairs" if study.spec.design.objective == "preference" else ""), -1
    try:
        while True:
            step = advance(study, generator, scorer, args.batch, store)
            for number, value in step.told.items():
                print(f"trial {number}: told {'FAIL (all skipped)' if value is None else f'{value:.3f}'}")
            if step.generated:
                where = (
                    "compare them on the page's /pairs"
                    if study.spec.design.objective == "preference"
                    else "rate them on the page"
                )
                print(f"generated trial(s) {', '.join(map(str, step.generated))}: {where}")
            if step.finished:
                print(
                    f"{study.name}: every trial is rated; best {step.summary.best_value} at "
                    f"{step.summary.best_condition}"
                )
                return 0
            seen = _wait_for_change(store, study.name, seen)
    except KeyboardInterrupt:
        print("stopped; `qeuopt steer` again resumes: trials awaiting ratings stay open")
        return 0
    finally:
        server.stop()
        store.close()


def _steer_store(spec):
    """The rating store; with the choices too when pairwise preferences steer (its revision
    then grows with either, so the loop wakes for a choice)."""
    from qeuopt.ratings.preferences import preference_store_for
    from qeuopt.ratings.store import store_for

    return preference_store_for(spec) if spec.design.objective == "preference" else store_for(spec)


def _wait_for_change(store, name: str, seen: int, poll_s: float = 1.0) -> int:
    while (revision := store.revision(name)) == seen:
        time.sleep(poll_s)
    return revision


def _weight(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a weight in [0, 1] is allowed; given {text}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number is allowed; given {text}")
    return int(text)


def _server_options(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks a free one")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")


def add_rating_commands(commands) -> None:
    rate = commands.add_parser("rate", help="rate the study's images in a browser (ratings go to MLflow)")
    rate.add_argument("study", help="path to a study TOML file")
    _server_options(rate)
    rate.set_defaults(func=cmd_rate)

    ratings = commands.add_parser("ratings", help="export, import or score the human ratings (and choices) of a study")
    sub = ratings.add_subparsers(dest="ratings_command", required=True)
    export = sub.add_parser("export", help=f"write the ratings as CSV ({', '.join(CSV_COLUMNS)})")
    export.add_argument("study")
    export.add_argument("-o", "--output", help="a file (default: standard output)")
    export.set_defaults(func=cmd_ratings_export)
    imports = sub.add_parser("import", help="read a ratings CSV; any bad row rejects the file, with line numbers")
    imports.add_argument("study")
    imports.add_argument("csv", type=Path)
    imports.set_defaults(func=cmd_import)
    scores = sub.add_parser("scores", help="rating, CLIP and combined score per condition (logged to MLflow)")
    scores.add_argument("study")
    scores.add_argument(
        "--rating-weight",
        type=_weight,
        default=WEIGHTS["rating"],
        help=f"weight of the normalized rating; CLIP gets the rest (default {WEIGHTS['rating']})",
    )
    scores.set_defaults(func=cmd_scores)

    preferences = sub.add_parser(
        "preferences",
        help="Bradley-Terry score per condition from the pairwise "
        "choices (page /pairs), with intervals (logged to MLflow)",
    )
    preferences.add_argument("study")
    preferences.set_defaults(func=cmd_preferences)

    steer = commands.add_parser("steer", help="a person steers the search: generate a batch, rate it, repeat")
    steer.add_argument("study", help="a study with design.objective = rating, combined or preference")
    steer.add_argument(
        "--batch",
        type=_positive,
        default=None,
        help="trials awaiting ratings at once (default: "
        "4 for an Optuna search, every remaining row for a fixed design)",
    )
    _server_options(steer)
    steer.set_defaults(func=cmd_steer)
