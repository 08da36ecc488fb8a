import pytest

from qeuopt.config.load import build_spec, load_study_file
from qeuopt.errors import StudyError
from tests.studies import study_data


def problems_of(data, base_dir="."):
    with pytest.raises(StudyError) as caught:
        build_spec(data, base_dir=base_dir)
    return caught.value.problems


def test_base_study_is_valid():
    spec = build_spec(study_data())
    assert spec.space.names == ["style_a", "style_b", "strength", "guidance"]
    assert spec.space.levels()["strength"] == (0.35, 0.45, 0.75)


@pytest.mark.parametrize(
    "changes, field, given",
    [
        ({"prompt": {"template": "a {style_a} {unknown}"}}, "prompt.template", "{unknown}"),
        ({"factors": {"style_a": ["x"], "style_b": ["y"], "colour": ["red"]}}, "factors.colour", "colour"),
        ({"factors": {"style_a": [], "style_b": ["y"]}}, "factors.style_a", "[]"),
        ({"factors": {"style_a": ["x", "x"], "style_b": ["y"]}}, "factors.style_a", "'x', 'x'"),
        ({"design": {"kind": "L7"}}, "design.kind", "'L7'"),
        ({"design": {"kind": "optuna", "sampler": "annealing", "trials": 5}}, "design.sampler", "'annealing'"),
        ({"design": {"kind": "optuna", "trials": 0}}, "design.trials", "0"),
        ({"design": {"objective": "likes"}}, "design.objective", "'likes'"),
        ({"generation": {"width": 500}}, "generation.width", "500"),
        ({"generation": {"mode": "inpaint"}}, "generation.mode", "'inpaint'"),
        ({"generation": {"grid": [2, 0]}}, "generation.grid", "[2, 0]"),
        ({"generation": {"steps": "thirty"}}, "generation.steps", "'thirty'"),
        ({"generation": {"scheduler": "warp"}}, "scheduler", "'warp'"),
        ({"generation": {"dtype": "float8"}}, "generation.dtype", "'float8'"),
        ({"generation": {"colour": 1}}, "generation.colour", "unknown setting"),
        ({"generation": {"model": "model.ckpt"}}, "generation.model", "pickle"),
        ({"generation": {"model": "./missing.safetensors"}}, "generation.model", "not found"),
        ({"generation": {"mode": "img2img"}}, "generation.init_image", "init image"),
        ({"generation": {"mode": "img2img", "init_image": "nope.png"}}, "generation.init_image", "'nope.png'"),
        ({"tracking": {"mlflow_uri": 5}}, "tracking.mlflow_uri", "5"),
        ({"extra": {}}, "extra", "unknown section"),
        ({"scoring": {"text": "a beach by {painter}"}}, "scoring.text", "{painter}"),
    ],
)
def test_each_rule_names_field_and_given_value(changes, field, given):
    problems = problems_of(study_data(**changes))
    assert any(f"`{field}`" in p and given in p for p in problems), problems


def test_strength_outside_unit_interval_is_named_per_level():
    data = study_data()
    data["factors"]["strength"] = [0.0, 0.5, 1.5]
    problems = problems_of(data)
    assert any("`factors.strength`" in p and "(0, 1]" in p and "0.0" in p for p in problems)
    assert any("`factors.strength`" in p and "1.5" in p for p in problems)


def test_img2img_strength_that_rounds_to_zero_steps(tmp_path):
    (tmp_path / "init.png").write_bytes(b"")
    data = study_data(generation={"mode": "img2img", "init_image": "init.png", "steps": 4})
    data["factors"]["strength"] = [0.2, 0.5, 0.9]
    problems = problems_of(data, tmp_path)
    assert any("`strength`" in p and "int(steps * strength)" in p for p in problems)


def test_levels_that_do_not_fit_the_array():
    data = study_data(design={"kind": "L4"})
    problems = problems_of(data)
    assert any("`design.kind`" in p and "L4" in p for p in problems)


def test_pickle_checkpoint_allowed_when_asked(tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"")
    spec = build_spec(study_data(generation={"model": "model.ckpt", "allow_pickle": True}), base_dir=tmp_path)
    assert spec.generation.allow_pickle


def test_all_problems_reported_together():
    data = study_data(generation={"width": 30, "height": 31, "mode": "x"})
    assert len(problems_of(data)) >= 3


def test_bad_toml_file_and_cli_exit_code(tmp_path, capsys):
    from qeuopt.cli.main import main

    path = tmp_path / "bad.toml"
    path.write_text("name = 'x'\n[factors\n")
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study_file(path)
    assert main(["validate", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_shipped_studies_validate():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].glob("studies/*.toml")):
        spec = load_study_file(path)
        assert spec.name == path.stem
