from pathlib import Path

import pytest

from qeuopt.generate.grid import parse_parameters, read_parameters
from qeuopt.run.study import Study
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data


def make_study(**changes) -> Study:
    data = study_data(**changes)
    return Study(data.pop("name"), data.pop("prompt"), data.pop("factors"), **data)


def test_l9_run_records_every_condition_in_mlflow(workdir):
    study = make_study()
    summary = study.run(FakeGenerator(), FakeScorer(), progress=False)
    assert (summary.ran, summary.total) == (9, 9)

    runs = study.runs()
    assert len(runs) == 9 and set(runs["status"]) == {"FINISHED"}
    row = runs.sort_values("tags.optuna.trial_number").iloc[0]
    assert row["params.prompt"].startswith("portrait in the style of ")
    assert {
        "params.factor.style_a",
        "params.factor.strength",
        "metrics.clip_mean",
        "metrics.clip_min",
        "metrics.clip_std",
        "metrics.clip_image_00",
        "metrics.clip_image_01",
    } <= set(runs.columns)

    trials = study.trials()
    assert trials["state"].eq("COMPLETE").all()
    by_trial = dict(zip(trials["number"], trials["user_attrs_mlflow_run_id"]))
    for _, run in runs.iterrows():  # the trial and the run point at each other
        assert by_trial[int(run["tags.optuna.trial_number"])] == run["run_id"]
        assert run["metrics.clip_mean"] == pytest.approx(
            trials.set_index("number").loc[int(run["tags.optuna.trial_number"]), "value"]
        )


def test_artifacts_hold_images_grid_and_table(workdir):
    study = make_study()
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    tracker = study.tracker()
    run_id = study.runs()["run_id"].iloc[0]
    listed = {a.path for a in tracker.client.list_artifacts(run_id)}
    assert {"png", "grid.png", "images_table.json"} <= listed
    assert "images" in listed  # only the small headerless chart (tests/test_dashboards.py); grid.png is stored once
    images = [a.path for a in tracker.client.list_artifacts(run_id, "png")]
    assert len(images) == 2
    local = tracker.download(run_id, images[0], workdir / "dl")
    # a local artifact store holds hard links to the output files: each image stored once
    folder = Path(study.runs().set_index("run_id").loc[run_id, "tags.qeuopt.folder"])
    stored = workdir / "mlartifacts" / run_id / "artifacts" / images[0]
    assert stored.samefile(folder / Path(images[0]).name)
    params = parse_parameters(read_parameters(local))
    assert params["Seed"] in ("1234", "1235") and params["Size"] == "32x32"
    assert params["negative_prompt"] == "low quality, BW"


def test_files_on_disk_carry_a1111_metadata(workdir):
    study = make_study()
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    folders = sorted((workdir / "outputs" / "unit").iterdir())
    assert [f.name for f in folders] == [f"c{n:03d}" for n in range(9)]
    png = sorted(folders[0].glob("*_seed*.png"))
    assert len(png) == 2 and (folders[0] / "grid.png").is_file()
    assert parse_parameters(read_parameters(png[1]))["Seed"] == "1235"


def test_interrupted_run_resumes_without_regenerating(workdir):
    study = make_study()
    with pytest.raises(RuntimeError, match="stopped after 4"):
        study.run(FakeGenerator(fail_after=4), FakeScorer(), progress=False)
    assert not list((workdir / "outputs" / "unit").glob("*.partial"))

    again = FakeGenerator()
    summary = study.run(again, FakeScorer(), progress=False)
    assert (summary.ran, summary.total) == (5, 9)
    assert len(again.calls) == 5
    done = study.trials()
    complete = done[done["state"] == "COMPLETE"]
    params = complete[[c for c in complete.columns if c.startswith("params_")]]
    assert len(params.drop_duplicates()) == 9  # every L9 row exactly once

    assert study.run(FakeGenerator(), FakeScorer(), progress=False).ran == 0
    assert len(study.runs().query("status == 'FINISHED'")) == 9


def test_full_factorial_and_optuna_designs(workdir):
    full = make_study(name="full", factors={"style_a": ["a", "b"], "style_b": ["c", "d", "e"]}, design={"kind": "full"})
    assert full.run(FakeGenerator(), FakeScorer(), progress=False).total == 6
    search = make_study(name="tpe", design={"kind": "optuna", "sampler": "tpe", "trials": 5})
    summary = search.run(FakeGenerator(), FakeScorer(), progress=False)
    assert summary.total == 5
    assert all(v in (0.35, 0.45, 0.75) and isinstance(v, float) for v in search.trials()["params_strength"])


def test_seed_factor_and_scoring_text(workdir):
    scorer, generator = FakeScorer(), FakeGenerator()
    study = make_study(
        factors={"style_a": ["a", "b"], "style_b": ["c", "d"], "seed": [10, 20]},
        design={"kind": "L4"},
        scoring={"text": "a beach by {style_b}"},
    )
    study.run(generator, scorer, progress=False)
    assert sorted({tuple(seeds) for _, seeds in generator.calls}) == [(10, 11), (20, 21)]
    assert set(scorer.texts) == {"a beach by c", "a beach by d"}


def test_interrupted_upload_is_redone_on_resume(workdir, monkeypatch):
    import qeuopt.run.condition as execute

    real_upload, calls = execute.upload_condition, []

    def flaky_upload(tracker, run_id, *args, **kwargs):
        calls.append(run_id)
        if len(calls) == 3:
            raise ConnectionError("tracking server went away")
        return real_upload(tracker, run_id, *args, **kwargs)

    monkeypatch.setattr(execute, "upload_condition", flaky_upload)
    study = make_study()
    with pytest.raises(ConnectionError):
        study.run(FakeGenerator(), FakeScorer(), progress=False)
    monkeypatch.setattr(execute, "upload_condition", real_upload)
    runs = study.runs()
    unfinished = runs[runs["status"] == "RUNNING"]
    assert len(unfinished) == 1  # its trial is complete: files and metrics were safe

    generator = FakeGenerator()
    study.run(generator, FakeScorer(), progress=False)
    runs = study.runs().set_index("run_id")
    assert runs.loc[unfinished["run_id"].iloc[0], "status"] == "FINISHED"
    tracker = study.tracker()
    listed = {a.path for a in tracker.client.list_artifacts(unfinished["run_id"].iloc[0])}
    assert {"png", "grid.png", "images_table.json"} <= listed
    assert len(study.trials().query("state == 'COMPLETE'")) == 9


def test_failed_trial_leaves_no_folder_and_a_failed_run(workdir, monkeypatch):
    study = make_study()

    class BrokenScorer(FakeScorer):
        def score(self, images, text):
            if len(self.texts) == 2:
                raise RuntimeError("CUDA out of memory")
            return super().score(images, text)

    with pytest.raises(RuntimeError, match="out of memory"):
        study.run(FakeGenerator(), BrokenScorer(), progress=False)
    folders = sorted(p.name for p in (workdir / "outputs" / "unit").iterdir())
    assert folders == ["c000", "c001"]
    assert study.optuna_study().trials[2].state.name == "FAIL"
    tracker = study.tracker()
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`optuna.trial_number` = '2'")
    assert runs == []  # scoring failed before the run was recorded: no run, and no RUNNING one


def test_oa_rounds_search_spends_the_budget_and_resumes(workdir):
    study = make_study(design={"kind": "optuna", "sampler": "oa", "trials": 12})
    summary = study.run(FakeGenerator(), FakeScorer(), progress=False)
    assert summary.total == 12 and len(study.runs()) == 12
    assert set(summary.recommended) == set(study.spec.space.names)
    assert summary.recommended["strength"] in (0.35, 0.45, 0.75)
    again = FakeGenerator()
    assert study.run(again, FakeScorer(), progress=False).total == 12 and again.calls == []
