"""What the dashboards show: the objective's name, the run link, numbers that sort, the grid."""

from PIL import Image

from qeuopt.config.load import build_spec
from qeuopt.run.study import Study
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data


def test_dashboards_name_link_sort_and_show_the_grid(workdir):
    study = Study.from_spec(build_spec(study_data(), base_dir=workdir))
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    optuna_study = study.optuna_study()
    assert optuna_study.metric_names == ["clip_mean"]  # not "Objective 0"
    trial = optuna_study.trials[0]
    run_id = trial.user_attrs["mlflow_run_id"]
    tracker = study.tracker()
    assert (
        trial.user_attrs["mlflow_run_url"]
        == f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs/{run_id}"
    )
    from optuna_dashboard._note import get_note_from_system_attrs

    attrs = optuna_study._storage.get_study_system_attrs(optuna_study._study_id)
    note = get_note_from_system_attrs(attrs, trial._trial_id)["body"]  # rendered as Markdown there
    assert note == f"MLflow run: [{run_id}]({trial.user_attrs['mlflow_run_url']})"

    run = tracker.client.get_run(run_id)
    assert run.data.params["factor.guidance"] == str(trial.params["guidance"])  # text: sorts "10.0" < "6.0"
    assert run.data.metrics["factor.guidance"] == trial.params["guidance"]  # a number: sorts as one
    assert run.data.metrics["strength"] == trial.params["strength"]

    images = tracker.artifact_paths(run_id, "images")
    assert images, "the grid is an MLflow image"
    chart = Image.open(tracker.download(run_id, next(p for p in images if p.endswith(".png")), workdir / "dl"))
    folder = workdir / "outputs" / "unit" / f"c{trial.number:03d}"
    with Image.open(folder / "grid.png") as grid:
        assert chart.width == grid.width and chart.height < grid.height  # no header text over it


def test_a_trial_note_costs_the_same_however_many_notes_the_study_has(workdir):
    """optuna-dashboard's save_note reads all of a study's notes to add one (a cost that grows
    with the study); qeuopt's note is written without reading any, and the dashboard reads it."""
    import optuna
    from optuna_dashboard import get_note

    from qeuopt.run.upload import save_trial_note

    study = optuna.create_study(storage=f"sqlite:///{workdir / 'notes.db'}")
    trials = [study.ask() for _ in range(30)]
    reads = []
    original = study._storage.get_study_system_attrs
    study._storage.get_study_system_attrs = lambda study_id: reads.append(study_id) or original(study_id)
    long_note = "MLflow run: " + "x" * 5000  # more than one of the dashboard's 2045-character chunks
    for trial in trials:
        save_trial_note(trial, long_note if trial.number == 7 else f"note {trial.number}")
    assert reads == []
    study._storage.get_study_system_attrs = original
    assert get_note(trials[3]) == "note 3"
    assert get_note(trials[7]) == long_note
    assert get_note(trials[29]) == "note 29"
