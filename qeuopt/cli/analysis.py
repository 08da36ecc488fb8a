"""The analysis commands of ``qeuopt``: analyze, recommend, export.

Registered by :func:`add_analysis_commands`; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys

RESPONSE_HELP = (
    "clip (= clip_mean), rating, combined, preference (pairwise choices), or a metric of the runs; "
    "default: the study's design.objective"
)


SUPPORT_TEXT = (
    "support k: each level of the setting was in at least k observed conditions; 0 means some "
    "level was never tried, so its prediction rests on the model alone. The interval is for the "
    "setting's mean score under the chosen model (narrow intervals with a poor model's error are "
    "too narrow)."
)


def _study(path: str):
    from qeuopt.run.study import Study

    return Study.from_file(path)


def cmd_analyze(args) -> int:
    from qeuopt.analysis.observations import RATING_RESPONSES
    from qeuopt.analysis.study import analyze_study

    study = _study(args.study)
    confirmation = False if args.no_confirm else (args.confirm or True)
    result = analyze_study(
        study,
        args.response,
        sn=args.sn,
        per=args.per,
        target=args.target,
        log=not args.no_log,
        confirmation=confirmation,
        seeds=args.seeds,
    )
    print(result.report())
    if result.response in RATING_RESPONSES and not args.no_tmethod:
        from qeuopt.analysis.rating_prediction import predict_ratings
        from qeuopt.errors import NoDataError

        print()
        try:
            print(predict_ratings(study, result.response, args.variant, log=not args.no_log).report())
        except NoDataError as err:  # the Taguchi part above still stands
            print(f"T-method not run: {err}")
    if not args.no_log:
        print(
            f"\nfigures and tables: MLflow, parent run {study.name!r}, artifacts analysis/ "
            f"(`qeuopt ui --study {args.study}`)"
        )
    print(
        f"the whole study on one page: `qeuopt report {args.study}`"
        + (f" --response {result.response}" if args.response else "")
    )
    return 0


def cmd_report(args) -> int:
    from qeuopt.recommend.report import report_summary, write_report

    study = _study(args.study)
    path = write_report(
        study,
        study_path=args.study,
        response=args.response,
        sn=args.sn,
        top=args.top,
        pair=args.pair,
        out=args.output,
        log=not args.no_log,
    )
    print(report_summary(path, study.name, not args.no_log))
    return 0


def cmd_recommend(args) -> int:
    from qeuopt.analysis.report import number, table
    from qeuopt.recommend.export import ranked_settings

    study = _study(args.study)
    ranked, response = ranked_settings(study, args.response, args.top, args.pair, diverse=not args.pure)
    columns = ["rank", *study.spec.space.names, "predicted", "90% interval", "support", "observed", "observed_mean"]
    rows = [
        {
            "rank": k,
            **{c: r.get(c) for c in columns[1:]},
            "predicted": number(r["predicted"]),
            "90% interval": f"{number(r['lower'], 3)} to {number(r['upper'], 3)}",
            "observed_mean": number(r["observed_mean"]),
        }
        for k, r in enumerate(ranked.to_dict("records"), start=1)
    ]
    order = "by prediction" if args.pure else f"one row per {' x '.join(ranked.attrs['diverse_by'])} first"
    print(
        f"{study.name}: top {len(rows)} settings by predicted {response}, {order} (observed = generated in the study)"
    )
    print(f"model: {ranked.attrs['model']}: {ranked.attrs['reason']}")
    print(table(rows, columns))
    print(SUPPORT_TEXT)
    return 0


def cmd_export(args) -> int:
    from qeuopt.recommend.export import export_settings

    study = _study(args.study)
    result = export_settings(
        study,
        args.format,
        args.output,
        top=args.top,
        response=args.response,
        pair=args.pair,
        seeds=args.seeds,
        denoising_strength=args.with_denoising_strength,
        a1111_version=args.a1111_version,
        diverse=not args.pure,
    )
    if args.format == "a1111":
        print(
            "note: A1111's prompts-from-file script cannot take img2img strength, schedule type (1.9+) or noise "
            "source per line: there is one file per strength and schedule type, and each file's first line "
            "(a # comment, delete it before running) says what to set in the UI",
            file=sys.stderr,
        )
    if args.format == "study":
        print(f"wrote {result}; run it with `qeuopt run {result}`")
    elif args.output:
        paths = ", ".join(map(str, result)) if isinstance(result, list) else result
        print(f"wrote {args.format} for the top {args.top} settings of {study.name} to {paths}", file=sys.stderr)
    else:
        sys.stdout.write(result)
    return 0


def _pair(text: str):
    """``auto``, ``none``, or two factor names joined by a comma."""
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    names = [part.strip() for part in text.split(",")]
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError(f"auto, none or two factors as A,B are allowed; given {text!r}")
    return tuple(names)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number is allowed; given {text!r}")
    return int(text)


def _ranking_options(parser) -> None:
    parser.add_argument("study", help="path to a study TOML file")
    parser.add_argument("--response", help=RESPONSE_HELP)
    parser.add_argument("--top", type=_positive, default=20, help="how many settings (default 20)")
    parser.add_argument(
        "--pair",
        type=_pair,
        default="auto",
        help="the artist-slot factors modelled as a pair: auto (used when cross-validation "
        "says it predicts better), none, or A,B (forced) (default auto)",
    )
    parser.add_argument(
        "--pure",
        action="store_true",
        help="rank purely by prediction (default: each "
        "artist pair once first, so the list is not one pair with other settings varied)",
    )


def add_analysis_commands(commands) -> None:
    analyze = commands.add_parser("analyze", help="factor effects, SN ratios, ANOVA, optimum; plots to MLflow")
    analyze.add_argument("study", help="path to a study TOML file")
    analyze.add_argument("--response", help=RESPONSE_HELP)
    analyze.add_argument(
        "--sn",
        choices=("larger", "smaller", "nominal"),
        default="larger",
        help="SN ratio kind (default larger-the-better)",
    )
    analyze.add_argument("--target", type=float, help="with --sn nominal: the target value of the response")
    analyze.add_argument(
        "--per",
        choices=("auto", "image", "condition"),
        default="auto",
        help="observations: one per image, seeds as noise (auto where possible), or per condition",
    )
    analyze.add_argument(
        "--confirm",
        metavar="FILE",
        help="where to write the confirmation study (default: <study>_confirm.toml beside the study file)",
    )
    analyze.add_argument("--no-confirm", action="store_true", help="write no confirmation study")
    analyze.add_argument("--seeds", type=_positive, default=3, help="new seeds in the confirmation study (default 3)")
    analyze.add_argument("--no-log", action="store_true", help="print only; log nothing to MLflow")
    analyze.add_argument(
        "--no-tmethod", action="store_true", help="with rating/combined: skip the T-method (it loads the CLIP model)"
    )
    analyze.add_argument("--variant", choices=("ta", "t1"), default="ta", help="T-method variant (default ta)")
    analyze.set_defaults(func=cmd_analyze)

    report = commands.add_parser(
        "report",
        help="one self-contained HTML page: scores, best and worst grids, "
        "response graphs, ANOVA, recommendations, next steps",
    )
    _ranking_options(report)
    report.set_defaults(top=10)
    report.add_argument(
        "--sn",
        choices=("larger", "smaller", "nominal"),
        default="larger",
        help="SN ratio kind (default larger-the-better)",
    )
    report.add_argument("-o", "--output", help="where to write it (default outputs/<study>/report.html)")
    report.add_argument("--no-log", action="store_true", help="do not copy it to the study's parent run in MLflow")
    report.set_defaults(func=cmd_report)

    recommend = commands.add_parser("recommend", help="rank settings, including ones never generated")
    _ranking_options(recommend)
    recommend.set_defaults(func=cmd_recommend)

    export = commands.add_parser("export", help="top settings as CSV, JSON, A1111 prompt lines or a study TOML")
    _ranking_options(export)
    export.add_argument("--format", choices=("csv", "json", "a1111", "study"), required=True)
    export.add_argument(
        "-o", "--output", help="a file (default: standard output; for study: <study>_top<N>.toml beside the study file)"
    )
    export.add_argument("--seeds", type=_positive, default=1, help="study format: new seeds per setting (default 1)")
    export.add_argument(
        "--with-denoising-strength",
        action="store_true",
        help="a1111 format, img2img: add --denoising_strength (upstream A1111's script rejects "
        "that option and then reads the whole line as the prompt; some forks accept it)",
    )
    export.add_argument(
        "--a1111-version",
        choices=("1.9", "1.8"),
        default="1.9",
        help="a1111 format: 1.9 (and later: sampler and schedule type apart) or 1.8 (and earlier: "
        "one name such as 'DPM++ 2M Karras')",
    )
    export.set_defaults(func=cmd_export)
