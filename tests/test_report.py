"""The study report: one self-contained HTML page with what a reader needs to decide."""

import base64
import re
from html.parser import HTMLParser

import tomli_w

from qeuopt.cli.main import main
from qeuopt.run.study import Study
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data


class Page(HTMLParser):
    """Images, headings, and rows of the page's tables."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.headings, self.rows, self._in, self._cells = [], [], [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "tr":
            self._cells = []
            self.rows.append((attrs.get("class", ""), self._cells))
        self._in = tag

    def handle_data(self, data):
        if self._in == "h2":
            self.headings.append(data)
        elif self._in in ("td", "th") and self._cells is not None:
            self._cells.append(data)

    def handle_endtag(self, tag):
        self._in = None


def test_report_command_writes_one_self_contained_page_and_logs_it(workdir, capsys):
    (workdir / "unit.toml").write_text(tomli_w.dumps(study_data()))
    study = Study.from_file(workdir / "unit.toml")
    study.run(FakeGenerator(), FakeScorer(), progress=False)

    assert main(["report", "unit.toml", "--top", "5"]) == 0
    out = capsys.readouterr().out
    path = workdir / "outputs" / "unit" / "report.html"
    assert f"study report: {path.relative_to(workdir)}" in out and "artifact report.html" in out
    text = path.read_text()
    page = Page(text)
    assert page.headings == [
        "Recommended settings",
        "Best and worst conditions",
        "Design and scores",
        "Response graphs",
        "ANOVA",
        "How to read this",
        "What to do next",
    ]
    # every picture is inside the file: grids (best, worst), response graph, SN plot
    assert len(page.images) == 4 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert all(base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG") for src in page.images)
    assert not re.search(r"(src|href)=['\"]https?:", text)

    conditions = study.runs().assign(n=lambda f: f["tags.optuna.trial_number"].astype(int)).set_index("n")
    best = int(conditions["metrics.clip_mean"].idxmax())
    worst = int(conditions["metrics.clip_mean"].idxmin())
    marked = {cls: cells[0] for cls, cells in page.rows if cls in ("best", "worst")}
    assert marked == {"best": f"#{best}", "worst": f"#{worst}"}
    assert f"best: condition #{best}" in text and f"worst: condition #{worst}" in text
    ranking = [cells for cls, cells in page.rows if cells and cells[0] in "12345" and len(cells[0]) == 1]
    assert len(ranking) == 5
    anova = [cells[0] for cls, cells in page.rows if cells and cells[0] in ("style_a", "error", "total")]
    assert "error" in anova and "total" in anova
    assert "qeuopt run unit_confirm.toml" in text and "qeuopt rate unit.toml" in text

    tracker = study.tracker()
    assert "report.html" in tracker.artifact_paths(tracker.find_study_run("unit"))


def test_mlflow_view_of_the_study_is_saved_on_its_experiment(workdir):
    """What MLflow's UI reads (checked in a browser by tests/test_newcomer.py): the experiment
    kind, and a saved view whose id the printed link carries."""
    import json

    study = Study.from_file(_write(workdir))
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    path = study.mlflow_view()
    tracker = study.tracker()
    tags = tracker.client.get_experiment(tracker.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert (
        path
        == f"/#/experiments/{tracker.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=qeuopt-unit"
    )
    envelope = json.loads(tags["mlflow.sharedViewState.qeuopt-unit"])
    state = json.loads(envelope["state"])
    assert envelope["name"] == "qeuopt: unit" and state["orderByKey"] == "tags.`mlflow.runName`"
    assert state["selectedColumns"][:2] == ["metrics.`clip_mean`", "metrics.`clip_std`"]
    assert "params.`factor.style_a`" in state["selectedColumns"]
    # the filter the view applies finds exactly the condition runs
    runs = tracker.client.search_runs([tracker.experiment_id], state["searchFilter"])
    assert len(runs) == 9 and all(r.info.run_name.startswith("c00") for r in runs)


def _write(folder):
    (folder / "unit.toml").write_text(tomli_w.dumps(study_data()))
    return folder / "unit.toml"


def test_report_shows_interval_columns_when_the_ranking_has_them(workdir, monkeypatch):
    import qeuopt.recommend.export as export
    from qeuopt.recommend.report import write_report

    (workdir / "unit.toml").write_text(tomli_w.dumps(study_data()))
    study = Study.from_file(workdir / "unit.toml")
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    ranked_settings = export.ranked_settings

    def with_intervals(*args, **kwargs):
        ranked, response = ranked_settings(*args, **kwargs)
        return ranked.assign(lower=ranked["predicted"] - 0.01, upper=ranked["predicted"] + 0.01), response

    monkeypatch.setattr(export, "ranked_settings", with_intervals)
    page = Page(write_report(study, top=3, log=False).read_text())
    header = next(cells for cls, cells in page.rows if cells and cells[0] == "rank")
    assert header[-6:] == ["predicted", "lower", "upper", "support", "observed", "observed_mean"]
