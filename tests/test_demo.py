"""End to end on the tiny models: study file -> images -> CLIP -> MLflow, as `qeuopt run` does."""

import shutil
from pathlib import Path

import pytest

from qeuopt.cli.main import main
from tests.studies import patched

STUDIES = Path(__file__).parents[1] / "studies"
DEMO_STUDY = Path(__file__).parents[1] / "qeuopt" / "data" / "demo_tiny_l9.toml"


@pytest.mark.slow
def test_demo_study_runs_end_to_end(workdir, capsys):
    text = DEMO_STUDY.read_text()
    # the same demo, smaller: a 1x2 grid and few steps keep the test quick
    text = patched(text, ("grid = [2, 3]", "grid = [1, 2]"), ("steps = 20", "steps = 4"))
    (workdir / "demo.toml").write_text(text)
    shutil.copy(STUDIES / "sketch.png", workdir / "sketch.png")

    assert main(["run", str(workdir / "demo.toml"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "9 condition(s) generated this run, 9 complete" in out

    from qeuopt.run.study import Study

    study = Study.from_file(workdir / "demo.toml")
    runs = study.runs()
    assert len(runs) == 9 and runs["metrics.clip_mean"].between(-1, 1).all()
    assert set(runs["params.factor.strength"]) == {"0.35", "0.45", "0.75"}
    assert len(list((workdir / "outputs" / "demo_tiny_l9").glob("c*/0*_seed*.png"))) == 18

    assert main(["run", str(workdir / "demo.toml"), "--quiet"]) == 0
    assert "0 condition(s) generated this run, 9 complete" in capsys.readouterr().out

    # the bar for recommendations: a top-5 list on the demo names at least three
    # artist pairs, and every line carries its interval and its support
    assert main(["recommend", str(workdir / "demo.toml"), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "90% interval" in out and "support k: each level" in out
    from qeuopt.recommend.export import ranked_settings

    ranked, _ = ranked_settings(study, top=5)
    assert len(ranked) == 5 and ranked[["style_a", "style_b"]].drop_duplicates().shape[0] >= 3
    assert (ranked["lower"] <= ranked["predicted"]).all() and (ranked["predicted"] <= ranked["upper"]).all()
    assert (ranked["support"] == 3).all()  # an L9: each level was in three observed conditions
