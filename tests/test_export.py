"""Exports of ranked settings: CSV/JSON round trips, A1111 lines that parse back, study TOML
files that load and run."""

import csv
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from qeuopt.analysis.confirmation import confirmation_study, write_study_toml
from qeuopt.cli.main import main
from qeuopt.config.load import build_spec, load_study_file
from qeuopt.errors import InputError
from qeuopt.recommend.export import (
    a1111_line,
    export_settings,
    setting_rows,
    write_json,
    write_settings_csv,
)
from qeuopt.run.study import Study
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data

STUDIES = Path(__file__).parents[1] / "studies"
TRICKY = 'Hokusai\'s "Great Wave"'  # both quote kinds survive shlex quoting


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One working folder for the tests that run studies: MLflow's database is set up once."""
    path = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        yield path


def spec_of(tmp_path=None, **changes):
    return build_spec(study_data(**changes), base_dir=tmp_path or ".")


def ranked(rows, predicted):
    """A frame shaped like qeuopt.recommend.rank.rank's result."""
    return pd.DataFrame(rows).assign(
        predicted=predicted,
        support=[6] * len(rows),
        observed=[False] * len(rows),
        observed_mean=[float("nan")] * len(rows),
        n_observed=[0] * len(rows),
    )


def a1111_cmdargs(line: str) -> dict:
    """What AUTOMATIC1111's "Prompts from file or textbox" reads from a line: shlex.split, then
    ``--option value`` pairs; a prompt takes every following word that is not an option."""
    args, options, pos = shlex.split(line), {}, 0
    while pos < len(args):
        assert args[pos].startswith("--"), args[pos]
        tag = args[pos][2:]
        value, pos = args[pos + 1], pos + 2
        while tag in ("prompt", "negative_prompt") and pos < len(args) and not args[pos].startswith("--"):
            value, pos = value + " " + args[pos], pos + 1
        options[tag] = value
    return options


def test_setting_rows_render_prompts_and_every_parameter():
    spec = spec_of(
        factors={"style_a": ["Frank Cho", TRICKY], "style_b": ["Todd Hido"], "guidance": [6.0, 8.0]},
        design={"kind": "full"},
        generation={"scheduler": "dpmpp_2m"},
    )
    rows = setting_rows(spec, ranked([{"style_a": TRICKY, "style_b": "Todd Hido", "guidance": 8.0}], [0.31]))
    row = rows[0]
    assert row["prompt"] == f"portrait in the style of {TRICKY}, beach in the style of Todd Hido, high quality"
    assert row["negative_prompt"] == "low quality, BW" and row["sampler"] == "DPM++ 2M"
    parameters = (row["rank"], row["guidance"], row["steps"], row["seed"], row["width"], row["images"])
    assert parameters == (1, 8.0, 4, 1234, 32, 2)
    assert (row["predicted"], row["support"], row["observed"], row["observed_mean"]) == (0.31, 6, False, None)
    assert row["mode"] == "txt2img" and "strength" not in row  # txt2img: no denoising strength
    data = Path(__file__).parents[1] / "qeuopt" / "data"  # holds sketch.png
    img2img = setting_rows(
        spec_of(data, generation={"mode": "img2img", "init_image": "sketch.png"}),
        ranked([{"style_a": "Hokusai", "style_b": "Todd Hido", "strength": 0.35, "guidance": 6.0}], [0.3]),
    )
    assert img2img[0]["strength"] == 0.35
    with pytest.raises(InputError, match="`guidance`: allowed levels \\[6.0, 8.0\\]; given 7.0"):
        setting_rows(spec, ranked([{"style_a": TRICKY, "style_b": "Todd Hido", "guidance": 7.0}], [0.3]))


def test_a1111_lines_parse_back_to_the_same_values(tmp_path):
    (tmp_path / "sketch.png").write_bytes((STUDIES / "sketch.png").read_bytes())
    spec = spec_of(
        tmp_path,
        prompt={"template": "a\nportrait of {style_a}, {style_b}", "negative": 'it\'s bad, "BW"'},
        factors={"style_a": [TRICKY, "--odd"], "style_b": ["$HOME `x`"], "strength": [0.35]},
        design={"kind": "full"},
        generation={"mode": "img2img", "init_image": "sketch.png", "scheduler": "euler_a"},
    )
    rows = setting_rows(
        spec, ranked([{"style_a": a, "style_b": "$HOME `x`", "strength": 0.35} for a in (TRICKY, "--odd")], [0.3, 0.2])
    )
    for row in rows:
        parsed = a1111_cmdargs(a1111_line(row))
        assert parsed == {
            "prompt": row["prompt"].replace("\n", " "),
            "negative_prompt": 'it\'s bad, "BW"',
            "steps": "4",
            "cfg_scale": "7.5",
            "seed": "1234",
            "width": "32",
            "height": "32",
            "sampler_name": "Euler a",
            "batch_size": "1",
            "n_iter": "2",
        }
        assert float(a1111_cmdargs(a1111_line(row, denoising_strength=True))["denoising_strength"]) == 0.35
    assert "\n" not in a1111_line(rows[0])  # one job per line


def test_csv_and_json_round_trip():
    spec = spec_of()
    settings = [
        {"style_a": "Hokusai", "style_b": "Claude Monet", "strength": 0.35, "guidance": 6.0},
        {"style_a": "Frank Cho", "style_b": "Todd Hido", "strength": 0.75, "guidance": 10.0},
    ]
    rows = setting_rows(
        spec, ranked(settings, [0.5, 0.4]).assign(observed=[True, False], observed_mean=[0.49, float("nan")])
    )
    text = io.StringIO()
    write_settings_csv(rows, text)
    back = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert [list(r) for r in back] == [list(r) for r in rows]
    assert back == [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]
    frame = pd.read_csv(io.StringIO(text.getvalue()))
    assert list(frame["strength"]) == [0.35, 0.75] and list(frame["observed"]) == [True, False]

    text = io.StringIO()
    write_json(rows, text, "unit", "clip_mean")
    data = json.loads(text.getvalue())
    assert data["study"] == "unit" and data["response"] == "clip_mean" and data["settings"] == rows


def test_study_toml_runs_exactly_a_factorial_of_settings(folder):
    spec = spec_of(folder)
    settings = [
        {"style_a": a, "style_b": "Todd Hido", "strength": s, "guidance": 8.0}
        for a in ("Hokusai", "Frank Cho")
        for s in (0.35, 0.45)
    ]
    data, header = confirmation_study(spec, settings, name="top4", seeds=[2000], out_dir=folder)
    path = write_study_toml(data, header, folder / "top4.toml")
    assert path.read_text().startswith("# Confirmation study of 'unit'")
    confirmation = Study.from_file(path)
    assert confirmation.run(FakeGenerator(), FakeScorer(), progress=False).total == 4
    runs = confirmation.runs()
    assert set(runs["params.seed"]) == {"2000"}
    assert set(runs["params.prompt"]) == {spec.prompt.render(s) for s in settings}


def test_study_toml_of_scattered_pairs_uses_the_rendered_prompts(folder):
    spec = spec_of(folder, scoring={"text": "a beach by {style_b}"})
    pairs = [("Hokusai", "Todd Hido"), ("Frank Cho", "Claude Monet"), ("Richard Dadd", "Rinko Kawauchi")]
    settings = [{"style_a": a, "style_b": b, "strength": 0.35, "guidance": 6.0} for a, b in pairs]
    data, header = confirmation_study(spec, settings, name="pairs", seeds=[2000, 2002], out_dir=folder)
    assert data["prompt"]["template"] == "{prompt}" and data["scoring"]["text"] == ""
    assert any("3 of them are the settings" in line for line in header)
    confirmation = Study.from_file(write_study_toml(data, header, folder / "pairs.toml"))
    assert confirmation.run(FakeGenerator(), FakeScorer(), progress=False).total == 6  # 3 pairs x 2 seeds
    assert set(confirmation.runs()["params.prompt"]) == {spec.prompt.render(s) for s in settings}


def test_study_toml_elsewhere_keeps_the_init_image(workdir):
    shutil.copy(STUDIES / "sketch.png", workdir / "sketch.png")
    spec = spec_of(workdir, generation={"mode": "img2img", "init_image": "sketch.png"})
    setting = {"style_a": "Hokusai", "style_b": "Todd Hido", "strength": 0.35, "guidance": 6.0}
    data, header = confirmation_study(spec, [setting], name="one", seeds=[9], out_dir=workdir / "sub")
    assert data["generation"]["init_image"] == "../sketch.png"
    assert load_study_file(write_study_toml(data, header, workdir / "sub" / "one.toml")).space.levels()["seed"] == (9,)


@pytest.mark.slow
def test_cli_recommend_and_export_every_format(folder, capsys):
    data = study_data()
    name = data["name"]
    (folder / "unit.toml").write_text(tomli_w.dumps(data))
    Study.from_file(folder / "unit.toml").run(FakeGenerator(), FakeScorer(), progress=False)

    assert main(["recommend", str(folder / "unit.toml"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert f"{name}: top 3 settings by predicted clip_mean" in out and "observed_mean" in out
    assert "model: " in out and "90% interval" in out and "support k: each level" in out

    assert main(["export", str(folder / "unit.toml"), "--format", "a1111", "--top", "3", "--pure"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    # txt2img lines carry no strength, so settings that differ only in strength render one
    # line, written once and counted in the header
    dropped = re.search(r"(\d+) setting\(s\) rendered a line already written, kept once", header)
    assert header.startswith("# A1111 1.9+") and len(lines) == 3 - (int(dropped[1]) if dropped else 0)
    assert len(set(lines)) == len(lines) and not any("denoising" in line for line in lines)
    assert all(a1111_cmdargs(line)["steps"] == "4" for line in lines)
    assert (
        main(["export", str(folder / "unit.toml"), "--format", "json", "--top", "4", "-o", "top.json", "--pure"]) == 0
    )  # pure ranking: the default list is diverse over the artist pair
    settings = json.loads((folder / "top.json").read_text())["settings"]
    assert [s["rank"] for s in settings] == [1, 2, 3, 4]
    assert settings == sorted(settings, key=lambda s: -s["predicted"])
    assert main(["export", str(folder / "unit.toml"), "--format", "study", "--top", "2"]) == 0
    assert "unit_top2.toml" in capsys.readouterr().out
    confirmation = Study.from_file(folder / "unit_top2.toml")
    confirmation.run(FakeGenerator(), FakeScorer(), progress=False)
    prompts = set(confirmation.runs()["params.prompt"])
    assert {s["prompt"] for s in settings[:2]} <= prompts

    with pytest.raises(InputError, match="`format`: allowed: csv, json, a1111, study; given 'xml'"):
        export_settings(Study.from_file(folder / "unit.toml"), "xml")
