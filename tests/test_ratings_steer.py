"""Ratings as the objective: ask/tell steps, and the Optuna storage in optuna-dashboard."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from qeuopt.ratings.store import store_for
from qeuopt.run.steer import AWAITING, advance
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.test_ratings_support import fresh_folder, make_study

SMALL = {
    "factors": {"style_a": ["a", "b"], "style_b": ["c", "d"], "guidance": [6.0, 8.0]},
    "generation": {"grid": [1, 2], "width": 16, "height": 16},
}


@pytest.fixture
def folder(workdir, tmp_path_factory):
    fresh_folder(tmp_path_factory.getbasetemp(), workdir)
    return workdir


def rate_all(study, numbers, values=(4, 2), rater="ann"):
    store = store_for(study.spec)
    for number in numbers:
        for image, value in enumerate(values):
            store.put(study.name, number, image, rater, value)
    store.close()


def states(study):
    trials = study.optuna_study().get_trials(deepcopy=False)
    return {t.number: (t.state.name, t.value) for t in trials}


def test_fixed_design_is_generated_then_told_as_ratings_arrive(folder):
    study = make_study(design={"kind": "L4", "objective": "rating"}, **SMALL)
    first = study.run(FakeGenerator(), FakeScorer(), progress=False)
    assert (first.ran, first.total, first.best_value) == (4, 0, None)  # every row awaits ratings
    assert all(t.user_attrs[AWAITING] for t in study.optuna_study().get_trials())
    runs = study.runs()
    assert set(runs["status"]) == {"FINISHED"}  # uploads done: the rating page can list them
    study.tracker().client.update_run(runs["run_id"].iloc[0], "RUNNING")  # as if killed mid-upload
    assert study.run(FakeGenerator(), FakeScorer(), progress=False).ran == 0  # nothing new to generate
    assert set(study.runs()["status"]) == {"FINISHED"}  # the cut-off upload was redone

    rate_all(study, [0, 1])
    rate_all(study, [2], values=(5,))  # only one of two images: not told yet
    rate_all(study, [3], values=("skip", "skip"))  # nobody rated it: the trial fails
    again = FakeGenerator()
    summary = study.run(again, FakeScorer(), progress=False)
    now = states(study)
    assert now[0] == now[1] == ("COMPLETE", 3.0) and now[2] == ("RUNNING", None) and now[3] == ("FAIL", None)
    assert (summary.ran, summary.total, summary.best_value) == (1, 2, 3.0)  # row of 3 generated again
    assert now[4] == ("RUNNING", None) and len(again.calls) == 1


def test_a_person_steers_a_tpe_search_by_rating(folder):
    study = make_study(design={"kind": "optuna", "sampler": "tpe", "trials": 5, "objective": "combined"}, **SMALL)
    generator, told = FakeGenerator(), {}
    step = advance(study, generator, FakeScorer(), batch=2)
    assert (step.generated, step.remaining) == ([0, 1], 3)
    for _ in range(5):
        if step.finished:
            break
        rate_all(study, step.awaiting, values=(1 + len(told) % 5, 3))
        rate_all(study, step.awaiting, values=(2, 5), rater="bob")
        step = advance(study, generator, FakeScorer(), batch=2)
        told.update(step.told)
    assert step.finished and sorted(told) == [0, 1, 2, 3, 4] and len(generator.calls) == 5
    assert all(value is not None for value in told.values())
    assert {state for state, _ in states(study).values()} == {"COMPLETE"}
    assert study.runs()["metrics.rating_count"].tolist() == [4.0] * 5  # each step copies ratings to MLflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_optuna_dashboard_shows_our_trials_params_and_values(folder):
    study = make_study(design={"kind": "L4", "objective": "rating"}, **SMALL)
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    rate_all(study, [0, 1, 2, 3])
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "import sys; from optuna_dashboard._cli import main; sys.exit(main())",
        f"sqlite:///{folder / 'optuna.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    dashboard = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        ours = next(s for s in studies if s["study_name"] == study.name)
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{ours['study_id']}")
    finally:
        dashboard.terminate()
        dashboard.wait(10)
    trials = {t["number"]: t for t in detail["trials"]}
    assert sorted(trials) == [0, 1, 2, 3] and {t["state"] for t in trials.values()} == {"Complete"}
    assert all(t["values"] == [3.0] for t in trials.values())
    expected = {t.number: t.params for t in study.optuna_study().get_trials()}
    for number, trial in trials.items():
        shown = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert shown == {k: str(v) for k, v in expected[number].items()}
        assert {a["key"] for a in trial["user_attrs"]} >= {"mlflow_run_id", "clip_scores"}


def _get_json(url: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return json.loads(reply.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
