"""Study -> observations -> Taguchi analysis -> MLflow, confirmation study, T-method on ratings.

The fake studies use a generator whose images carry a known additive response (read back by
a scorer), so effects, optimum and prediction can be checked by hand."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from qeuopt.analysis.rating_prediction import (
    predict_ratings,
    prompt_phrases,
    unit_space,
)
from qeuopt.analysis.study import (
    analyze_study,
    is_balanced,
    least_squares_anova,
    study_observations,
)
from qeuopt.cli.main import main
from qeuopt.config.load import load_study_file
from qeuopt.errors import InputError, NoDataError
from qeuopt.ratings.store import store_for
from qeuopt.run.study import Study
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import patched, study_data

STUDIES = Path(__file__).parents[1] / "studies"
DEMO_STUDY = Path(__file__).parents[1] / "qeuopt" / "data" / "demo_tiny_l9.toml"
# the true response: 0.30 + one effect per factor level, +-0.01 by seed parity (noise)
EFFECTS = {
    "style_a": {"Richard Dadd": 0.00, "Hokusai": 0.06, "Frank Cho": 0.03},
    "style_b": {"Rinko Kawauchi": 0.00, "Todd Hido": -0.04, "Claude Monet": 0.02},
    "strength": {0.35: 0.05, 0.45: 0.02, 0.75: 0.00},
    "guidance": {6.0: 0.00, 8.0: 0.01, 10.0: -0.03},
}


def truth(setting, seed=None):
    noise = 0.0 if seed is None else (0.01 if seed % 2 == 0 else -0.01)
    return 0.30 + sum(EFFECTS[f][setting[f]] for f in EFFECTS) + noise


class AdditiveGenerator(FakeGenerator):
    """Grey images; each carries its true response in ``info`` for :class:`TruthScorer`."""

    def generate(self, prompt, negative, settings, seeds, init_image=None):
        images = super().generate(prompt, negative, settings, seeds, init_image)
        setting = {
            "style_a": next(a for a in EFFECTS["style_a"] if a in prompt),
            "style_b": next(b for b in EFFECTS["style_b"] if b in prompt),
            "strength": settings.strength,
            "guidance": settings.guidance,
        }
        for image, seed in zip(images, seeds):
            image.info["truth"] = truth(setting, seed)
        return images


class TruthScorer:
    def score(self, images, text):
        return np.array([image.info["truth"] for image in images])


def make_study(**changes) -> Study:
    data = study_data(**changes)
    return Study(data.pop("name"), data.pop("prompt"), data.pop("factors"), **data)


def small_study(name: str, **design) -> Study:
    """Four one-image conditions: quick to run where only the plumbing is tested."""
    return make_study(
        name=name,
        factors={"style_a": ["a", "b"], "style_b": ["c", "d"]},
        design=design or {"kind": "L4"},
        generation={"grid": [1, 1]},
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One working folder for the module: the MLflow database is set up once (seconds),
    and every study here has its own name."""
    path = tmp_path_factory.mktemp("analysis")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        yield path


@pytest.fixture(scope="module")
def l9(folder):
    """One L9 study with a known additive response, run once for the module."""
    study = make_study()
    study.run(AdditiveGenerator(), TruthScorer(), progress=False)
    return study


def test_observations_map_levels_back_to_the_study_objects(l9):
    per_condition = study_observations(l9, "clip")
    assert len(per_condition) == 9 and list(per_condition["condition"]) == list(range(9))
    assert {type(v) for v in per_condition["strength"]} == {float}
    assert set(per_condition["strength"]) == {0.35, 0.45, 0.75}
    per_image = study_observations(l9, "clip_mean", per="image")
    assert len(per_image) == 18 and set(per_image["image"]) == {0, 1}
    assert set(per_image["image_seed"]) == {1234, 1235}
    for _, row in per_image.iterrows():  # every image value is the truth of its own seed
        assert row["clip_mean"] == pytest.approx(truth(row, row["image_seed"]))
    with pytest.raises(InputError, match="`response`.*given 'sharpness'"):
        study_observations(l9, "sharpness")
    with pytest.raises(InputError, match="`per`"):
        study_observations(l9, "clip_max", per="image")


def test_analysis_recovers_known_effects_and_optimum(l9):
    result = analyze_study(l9, log=False, confirmation=False)
    t = result.taguchi
    assert result.per == "image" and result.design == "L9" and result.balanced
    for factor, effects in EFFECTS.items():  # balanced: level mean - grand mean = effect - mean effect
        centre = np.mean(list(effects.values()))
        for level, effect in effects.items():
            assert t.level_mean(factor, level) - t.grand_mean == pytest.approx(effect - centre, abs=1e-9)
    best = {f: max(e, key=e.get) for f, e in EFFECTS.items()}
    assert t.optimum == best
    assert t.predicted == pytest.approx(truth(best), abs=1e-9)  # additive and noise-free on average
    assert t.anova.set_index("source").loc["error", "dof"] == 18 - 1 - 8  # seeds give the error
    text = result.report()
    assert "ANOVA" in text and "Optimum by mean: style_a = Hokusai" in text and "Seed is the noise factor" in text


def test_analysis_logs_plots_and_tables_and_its_confirmation_study_runs(l9, tmp_path):
    confirm = tmp_path / "confirm.toml"
    result = analyze_study(l9, confirmation=confirm, seeds=2)
    tracker = l9.tracker()
    parent = tracker.find_study_run(l9.name)
    logged = set(tracker.artifact_paths(parent, "analysis/clip_mean"))
    assert {
        f"analysis/clip_mean/{name}"
        for name in ("main_effects.png", "sn_ratio.png", "effects.json", "anova.json", "report.txt", "confirm.toml")
    } <= logged

    spec = load_study_file(confirm)
    assert spec.design.kind == "full" and spec.experiment_name == l9.spec.experiment_name
    assert {f.name: f.levels for f in spec.space.factors} == {
        **{f: (v,) for f, v in result.taguchi.optimum.items()},
        "seed": (1236, 1238),
    }
    confirmation = Study.from_spec(spec)
    assert confirmation.run(AdditiveGenerator(), TruthScorer(), progress=False).total == 2
    mean = confirmation.runs()["metrics.clip_mean"].mean()
    low, high = result.taguchi.interval
    assert low <= mean <= high and mean == pytest.approx(result.taguchi.predicted)


def test_least_squares_anova_equals_the_taguchi_anova_on_balanced_data(l9):
    result = analyze_study(l9, log=False, confirmation=False)
    factors = list(EFFECTS)
    mine = least_squares_anova(result.observations, factors, "clip_mean").set_index("source")
    taguchi = result.taguchi.anova.set_index("source")
    for column in ("dof", "ss", "f", "contribution_pct"):
        assert list(mine[column].fillna(-1)) == pytest.approx(list(taguchi[column].fillna(-1)), rel=1e-9, abs=1e-12)
    unbalanced = result.observations[result.observations["condition"] != 0]
    rows = least_squares_anova(unbalanced, factors, "clip_mean").set_index("source")
    # 8 conditions carry 7 effect dof, not 8: the factors now share 3 of them, so each keeps
    # only 1 dof of its own (Type II counts what a factor adds after all the others)
    assert rows.loc["error", "dof"] == 16 - 8 and list(rows.loc[factors, "dof"]) == [1, 1, 1, 1]
    assert (rows["ss"] >= 0).all()


def test_balance_check_and_an_adaptive_study_is_called_unbalanced(folder):
    levels = {"a": [1, 2], "b": ["x", "y"]}
    import pandas as pd

    full = pd.DataFrame({"a": [1, 1, 2, 2], "b": ["x", "y", "x", "y"]})
    assert is_balanced(full, levels) and not is_balanced(full.iloc[:3], levels)
    study = small_study("random", kind="optuna", sampler="random", trials=3)
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    result = analyze_study(study, log=False, confirmation=False)
    assert result.design == "optuna" and not result.balanced
    assert "not from a balanced design" in result.report()


def test_ratings_response_and_tmethod_predictions(l9):
    # ratings fall linearly with strength; conditions 6-8 stay unrated
    store = store_for(l9.spec)
    by_strength = {0.35: 5, 0.45: 4, 0.75: 1}
    table = study_observations(l9, "clip")
    for _, row in table[table["condition"] < 6].iterrows():
        for image in (0, 1):
            store.put(l9.name, int(row["condition"]), image, "ann", by_strength[row["strength"]])
    store.close()

    rated = study_observations(l9, "rating", per="image")
    assert set(rated["condition"]) == set(range(6)) and len(rated) == 12
    assert not analyze_study(l9, "rating", log=False, confirmation=False).balanced

    prediction = predict_ratings(l9, "rating", scorer=FakeScorer())
    assert "factor:strength" in prediction.selected and prediction.gains["factor:strength"] > 0
    unrated = prediction.predictions[~prediction.predictions["rated"]]
    expected = [by_strength[s] for s in unrated["strength"]]
    assert list(unrated["predicted"]) == pytest.approx(expected, abs=0.05)
    assert "Predicted for conditions nobody rated" in prediction.report()
    tracker = l9.tracker()
    assert "analysis/tmethod_rating/item_gains.json" in tracker.artifact_paths(
        tracker.find_study_run(l9.name), "analysis/tmethod_rating"
    )
    run = tracker.client.get_run(table.loc[table["condition"] == 7, "run_id"].item())
    assert run.data.metrics["tmethod_rating"] == pytest.approx(5, abs=0.05)


def test_prompt_phrases_and_unit_space():
    template = (
        "((1girl:1.3), blue eye, in the style of {style_a}), (beach, in the style of {style_b}:1.1), "
        "<lora:x:0.5> high quality"
    )
    assert prompt_phrases(template) == [
        "1girl",
        "blue eye",
        "in the style of {style_a}",
        "beach",
        "in the style of {style_b}",
        "high quality",
    ]
    assert list(unit_space(np.array([1.0, 5.0, 3.0, 2.9, 4.0, 1.5]))) == [False, False, True, True, False, False]


def test_without_runs_or_ratings_the_errors_say_what_to_do(folder):
    study = small_study("empty")
    study.tracker()  # the experiment exists, the study has no runs
    with pytest.raises(NoDataError, match="no finished condition runs.*qeuopt run"):
        analyze_study(study)
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    with pytest.raises(NoDataError, match="no ratings yet.*qeuopt rate"):
        analyze_study(study, "rating")


@pytest.mark.slow
def test_demo_study_plots_appear_in_mlflow(folder, capsys):
    """The demo on the tiny models, analysed from the command line; then rated and analysed
    with the T-method, whose CLIP items come from the tiny CLIP on the PNGs on disk."""
    text = DEMO_STUDY.read_text()
    text = patched(text, ("grid = [2, 3]", "grid = [1, 2]"), ("steps = 20", "steps = 4"))
    (folder / "demo.toml").write_text(text)
    shutil.copy(STUDIES / "sketch.png", folder / "sketch.png")
    assert main(["run", str(folder / "demo.toml"), "--quiet"]) == 0
    capsys.readouterr()

    assert main(["analyze", str(folder / "demo.toml")]) == 0
    out = capsys.readouterr().out
    assert "Main effects" in out and "ANOVA" in out and "demo_tiny_l9_confirm.toml" in out
    study = Study.from_file(folder / "demo.toml")
    tracker = study.tracker()
    parent = tracker.find_study_run(study.name)
    assert {"analysis/clip_mean/main_effects.png", "analysis/clip_mean/sn_ratio.png"} <= set(
        tracker.artifact_paths(parent, "analysis/clip_mean")
    )
    assert load_study_file(folder / "demo_tiny_l9_confirm.toml").generation.init_image == "sketch.png"

    store = store_for(study.spec)
    for condition in range(6):
        store.put(study.name, condition, 0, "ann", 1 + condition % 5)
    store.close()
    assert main(["analyze", str(folder / "demo.toml"), "--response", "rating", "--no-confirm"]) == 0
    out = capsys.readouterr().out
    assert "T-method (ta) for rating" in out and "clip:in the style of {style_a}" in out
    assert "analysis/tmethod_rating/items.json" in tracker.artifact_paths(parent, "analysis/tmethod_rating")
