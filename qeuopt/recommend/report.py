"""The study report: one self-contained HTML page people can open, keep and send.

    path = write_report(study, study_path="demo/demo_tiny_l9.toml")   # outputs/<study>/report.html

Everything is inside the file (figures and grids as PNG data URIs, the style inline, no
script, nothing fetched), so it opens from a mail attachment as well as from disk. The
page holds the recommended settings with their prediction (and interval columns when the
ranking has them), the best and worst condition grids with their scores, the design with
each condition's score, the response graphs and SN plot, the ANOVA with contribution
ratios, the analysis notes, and the next commands. A copy goes to the study's parent run
in MLflow as ``report.html``, which MLflow's artifact view shows inline.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from qeuopt.analysis.report import SN_NAMES, number, setting_label

REPORT_NAME = "report.html"
GRID_WIDTH = 1100  # pixels: larger grids are scaled down to keep the page light
# columns of the ranking, shown when present (intervals come with some rankings only)
RANK_COLUMNS = ("predicted", "lower", "upper", "support", "observed", "observed_mean")

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#666} table{border-collapse:collapse;margin:.6em 0}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6} tr.best td{background:#eaf6ea} tr.worst td{background:#fbecec}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top} img{max-width:100%;border:1px solid #ddd}
#grids figure{width:47%} #grids img{width:min(100%,480px);image-rendering:pixelated}
figcaption{color:#444;font-size:.92em} code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}
.notes li{margin:.3em 0}
"""


def write_report(
    study,
    *,
    study_path: str | None = None,
    response: str | None = None,
    sn: str = "larger",
    top: int = 10,
    pair: Any = "auto",
    out: str | Path | None = None,
    log: bool = True,
) -> Path:
    """Analyse and rank the study, write the page, and (``log``) put it on the parent run."""
    from qeuopt.analysis.study import analyze_study, condition_table
    from qeuopt.recommend.export import ranked_settings

    analysis = analyze_study(study, response, sn=sn, log=False)
    ranked, _ = ranked_settings(study, analysis.response, top, pair)
    conditions = condition_table(study)
    page = render(study, analysis, ranked, conditions, study_path or "STUDY")
    path = Path(out) if out else Path(study.spec.tracking.output_dir) / study.name / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    if log:
        tracker = study.tracker()
        run_id = tracker.find_study_run(study.name)
        if run_id is not None:
            tracker.log_artifact(run_id, path)
    return path


def render(study, analysis, ranked, conditions, study_path: str) -> str:
    """The whole page as text."""
    t = analysis.taguchi
    spec = study.spec
    gen = spec.generation
    meta = (
        f"{analysis.design} design · {len(t.conditions)} conditions · {gen.grid[0]}x{gen.grid[1]} images each · "
        f"model {gen.model} · {gen.mode} · response {analysis.response} · written {time.strftime('%Y-%m-%d %H:%M')}"
    )
    parts = [
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>qeuopt report: {_e(study.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(study.name)}</h1><p class='meta'>{_e(meta)}</p>",
        f"<p>Prompt template: <code>{_e(spec.prompt.template)}</code></p>",
        _recommendation(spec, analysis, ranked),
        _grids(study, analysis, conditions),
        _design(spec, analysis),
        _figures(analysis),
        _anova(analysis),
        _notes(analysis),
        _next_steps(analysis, study_path),
        "</body></html>\n",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------------------ sections
def _recommendation(spec, analysis, ranked) -> str:
    names = spec.space.names
    shown = [c for c in RANK_COLUMNS if c in ranked.columns]
    rows = [
        [str(k)] + [str(r[n]) for n in names] + [_rank_cell(c, r[c]) for c in shown]
        for k, r in enumerate(ranked.to_dict("records"), start=1)
    ]
    t = analysis.taguchi
    low, high = t.interval
    interval = f", 95% interval {number(low)} .. {number(high)}" if analysis.balanced and low == low else ""
    text = (
        f"<p>Settings ranked by the predicted {_e(analysis.response)}, including settings never generated "
        f"(<em>observed</em> = generated in this study; <em>support</em> = observations behind the "
        f"prediction). The classic Taguchi optimum is <strong>{_e(setting_label(t.optimum))}</strong>, "
        f"predicted {number(t.predicted)}{interval}.</p>"
    )
    return (
        "<section id='recommendation'><h2>Recommended settings</h2>"
        + text
        + _table(["rank", *names, *shown], rows, numeric=set(shown) - {"observed"})
        + "</section>"
    )


def _rank_cell(column: str, value: Any) -> str:
    if column == "observed":
        return "yes" if value else ""
    if column == "support":
        return str(int(value))
    return number(value)


def _grids(study, analysis, conditions) -> str:
    scores = analysis.taguchi.conditions.set_index("condition")["mean"].dropna()
    if scores.empty:
        return ""
    best, worst = scores.idxmax(), scores.idxmin()
    by_number = conditions.set_index("condition")
    figures = []
    for label, number_ in (("best", best), ("worst", worst)):
        row = by_number.loc[number_]
        levels = {f: row[f] for f in study.spec.space.names}
        caption = (
            f"{label}: condition #{number_}, {analysis.response} {number(scores[number_])} — {setting_label(levels)}"
        )
        source = _grid_png(study, row)
        image = (
            f"<img alt='grid of condition {number_}' src='data:image/png;base64,{source}'>"
            if source
            else "<p>(grid not found on this machine or in MLflow)</p>"
        )
        figures.append(f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>")
    return (
        "<section id='grids'><h2>Best and worst conditions</h2><p>Each image's seed and score is "
        "printed under it.</p>" + "".join(figures) + "</section>"
    )


def _grid_png(study, row) -> str | None:
    """The condition's grid.png as base64, from its folder or else from its MLflow run."""
    from PIL import Image

    path = Path(str(row.get("folder") or "")) / "grid.png"
    if not path.is_file():
        try:
            path = study.tracker().download(row["run_id"], "grid.png", tempfile.mkdtemp(prefix="qeuopt-report-"))
        except Exception:  # noqa: BLE001 - a report without one picture beats no report
            return None
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > GRID_WIDTH:
            image = image.resize((GRID_WIDTH, round(image.height * GRID_WIDTH / image.width)))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _design(spec, analysis) -> str:
    frame = analysis.taguchi.conditions.sort_values("condition")
    names = [n for n in spec.space.names if n in frame.columns]
    best, worst = frame["mean"].idxmax(), frame["mean"].idxmin()
    rows, classes = [], []
    for index, r in frame.iterrows():
        rows.append(
            [f"#{r['condition']}"]
            + [str(r[n]) for n in names]
            + [number(r["mean"]), number(r["sn_db"]), str(int(r["n"]))]
        )
        classes.append("best" if index == best else "worst" if index == worst else "")
    return (
        "<section id='design'><h2>Design and scores</h2><p>Every condition that ran, with its mean "
        f"{_e(analysis.response)} over its images and their SN ratio ({SN_NAMES[analysis.taguchi.sn]}); "
        "best row green, worst red.</p>"
        + _table(
            ["condition", *names, f"mean {analysis.response}", "SN dB", "n"],
            rows,
            numeric={f"mean {analysis.response}", "SN dB", "n"},
            classes=classes,
        )
        + "</section>"
    )


def _figures(analysis) -> str:
    from qeuopt.analysis.figures import effects_figure

    t = analysis.taguchi
    figures = [("response graph: mean per level", effects_figure(t, "mean", f"mean {t.response} per level"))]
    if analysis.sn_meaningful:
        figures.append((f"SN ratio per level ({SN_NAMES[t.sn]})", effects_figure(t, "sn_db", "SN ratio per level")))
    body = "".join(
        f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{_figure_png(fig)}'>"
        f"<figcaption>{_e(caption)}; dashed: the mean over everything</figcaption></figure>"
        for caption, fig in figures
    )
    return "<section id='effects'><h2>Response graphs</h2>" + body + "</section>"


def _figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _anova(analysis) -> str:
    rows = [
        [
            str(r["source"]),
            str(int(r["dof"])),
            number(r["ss"]),
            number(r["ms"]),
            "pooled" if r["pooled"] else number(r["f"], 3),
            "" if r["pooled"] else number(r["contribution_pct"], 3),
        ]
        for _, r in analysis.anova.iterrows()
    ]
    kind = "" if analysis.balanced else " (Type II sums of squares by least squares: the data are not balanced)"
    return (
        f"<section id='anova'><h2>ANOVA</h2><p>rho % is each factor's contribution ratio: the share of "
        f"the variation it explains{_e(kind)}.</p>"
        + _table(["source", "dof", "SS", "MS", "F", "rho %"], rows, numeric={"dof", "SS", "MS", "F", "rho %"})
        + "</section>"
    )


def _notes(analysis) -> str:
    if not analysis.notes:
        return ""
    items = "".join(f"<li>{_e(note)}</li>" for note in analysis.notes)
    return f"<section id='notes'><h2>How to read this</h2><ul class='notes'>{items}</ul></section>"


def _next_steps(analysis, study_path: str) -> str:
    steps = []
    if analysis.confirmation:
        steps.append(
            (
                f"qeuopt run {_relative(analysis.confirmation)}",
                "run the optimum on new seeds: its mean should fall in the predicted interval",
            )
        )
    steps += [
        (
            f"qeuopt rate {study_path}",
            "rate the images in a browser; then "
            f"<code>qeuopt report {_e(study_path)} --response combined</code> ranks by people and CLIP together",
        ),
        (
            f"qeuopt export {study_path} --format a1111 --top 5 -o top5.txt",
            "the top settings as AUTOMATIC1111 prompt lines (csv, json and study TOML also work)",
        ),
        (f"qeuopt ui --study {study_path}", "every condition, image and score in MLflow"),
    ]
    items = "".join(f"<li><code>{_e(command)}</code>: {why}</li>" for command, why in steps)
    return f"<section id='next'><h2>What to do next</h2><ol>{items}</ol></section>"


# ------------------------------------------------------------------------------- helpers
def _table(
    header: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[str] = frozenset(), classes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for k, row in enumerate(rows):
        cls = f" class='{classes[k]}'" if k < len(classes) and classes[k] else ""
        cells = "".join(
            f"<td class='num'>{_e(v)}</td>" if h in numeric else f"<td>{_e(v)}</td>" for h, v in zip(header, row)
        )
        lines.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _relative(path: Path) -> Path:
    """``path`` from the working folder when it is below it (commands read better so)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd())
    except ValueError:
        return Path(path)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def report_summary(path: Path, study_name: str, logged: bool) -> str:
    """What the command prints after writing the page."""
    where = f"; in MLflow too: parent run {study_name!r}, artifact {REPORT_NAME}" if logged else ""
    return f"study report: {path} (open it in a browser{where})"


__all__ = ["REPORT_NAME", "render", "report_summary", "write_report"]
