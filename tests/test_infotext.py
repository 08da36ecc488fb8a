"""Round trips through A1111's own reading rules: every PNG and grid we write, every line we
export, and every sampler/schedule pair back to the scheduler we ran."""

import hashlib
import itertools

import pytest
import torch
from safetensors.torch import save_file

from qeuopt import __version__
from qeuopt.config.load import build_spec
from qeuopt.config.schedulers import SCHEDULER_NAMES, SCHEDULERS, a1111_sampler, from_a1111, legacy_sampler_name
from qeuopt.generate.grid import read_parameters
from qeuopt.generate.infotext import lora_hash, model_hash
from qeuopt.recommend.export import a1111_files, setting_rows
from qeuopt.run.study import Study
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.a1111_rules import parse_generation_parameters, prompts_from_file_line
from tests.studies import study_data
from tests.test_export import ranked


def tensors_file(path, seed):
    torch.manual_seed(seed)
    save_file({"lora_unet.weight": torch.randn(4, 4)}, str(path), metadata={"seed": str(seed)})
    return path


class CheckpointFake(FakeGenerator):
    """The fake generator, presenting a single-file checkpoint (so a model hash exists)."""

    def __init__(self, checkpoint):
        super().__init__()
        self.model, self.model_hash = str(checkpoint), model_hash(checkpoint)


def test_hashes_are_a1111s(tmp_path):
    path = tensors_file(tmp_path / "ink.safetensors", 1)
    data = path.read_bytes()
    assert model_hash(path) == hashlib.sha256(data).hexdigest()[:10]
    header = 8 + int.from_bytes(data[:8], "little")
    assert lora_hash(path) == hashlib.sha256(data[header:]).hexdigest()[:12]  # tensor bytes only
    assert model_hash(tmp_path) is None  # a diffusers folder: no single file to hash


def test_every_png_and_grid_reads_back_with_every_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tensors_file(tmp_path / "ink.safetensors", 1)
    (tmp_path / "sketch.png").write_bytes(b"")
    from PIL import Image

    Image.new("RGB", (32, 32), "white").save(tmp_path / "sketch.png")
    data = study_data(
        prompt={"template": "((1girl:1.3), in the style of {style_a}), <lora:ink:0.5>", "negative": "low quality, BW"},
        factors={"style_a": ["Hokusai"], "scheduler": list(SCHEDULER_NAMES)},
        design={"kind": "full"},
        loras={"ink": "ink.safetensors"},
        generation={
            "mode": "img2img",
            "init_image": "sketch.png",
            "strength": 0.5,
            "steps": 4,
            "width": 32,
            "height": 32,
            "grid": [1, 2],
        },
    )
    study = Study.from_spec(build_spec(data, base_dir=tmp_path))
    generator = CheckpointFake(tensors_file(tmp_path / "model.safetensors", 2))
    study.run(generator, FakeScorer(), progress=False)
    runs = study.runs().set_index("tags.optuna.trial_number")
    folders = sorted((tmp_path / "outputs" / "unit").iterdir())
    assert len(folders) == len(SCHEDULER_NAMES)
    for folder in folders:
        scheduler = runs.loc[str(int(folder.name[1:])), "params.factor.scheduler"]
        for png in sorted(folder.glob("*.png")):  # the images and grid.png
            fields = parse_generation_parameters(read_parameters(png))
            assert fields["Prompt"] == "((1girl:1.3), in the style of Hokusai), <lora:ink:0.5>"
            assert fields["Negative prompt"] == "low quality, BW"
            assert from_a1111(fields["Sampler"], fields["Schedule type"]) == (
                "euler" if scheduler == "default" else scheduler
            )
            assert {k: fields[k] for k in ("Steps", "CFG scale", "Size-1", "Size-2", "Denoising strength")} == {
                "Steps": "4",
                "CFG scale": "7.5",
                "Size-1": "32",
                "Size-2": "32",
                "Denoising strength": "0.5",
            }
            assert fields["Seed"] == ("1234" if png.name != "01_seed1235.png" else "1235")
            assert (fields["RNG"], fields["Model"], fields["Model hash"]) == ("CPU", "model", generator.model_hash)
            assert fields["Lora hashes"] == f"ink: {lora_hash(tmp_path / 'ink.safetensors')}"
            assert fields["Version"] == f"qeuopt {__version__}"
    run = runs.iloc[0]  # CLIP reads the prompt as a person reads it; numbers also go in as metrics
    assert run["params.scoring_text"] == "1girl, in the style of Hokusai"
    assert run["metrics.steps"] == 4 and run["metrics.guidance"] == 7.5


def test_every_scheduler_pastes_back_as_itself():
    for name in SCHEDULERS:
        assert from_a1111(*a1111_sampler(name)) == name
    assert a1111_sampler("dpmpp_2m") != a1111_sampler("dpmpp_2m_karras")  # they differ in A1111 too
    assert from_a1111("DPM++ 2M") == "dpmpp_2m_karras"  # 1.9+ reads an old "DPM++ 2M" as Karras


def ran_as(sampler, schedule, version):
    """The scheduler A1111 runs: 1.9+ reads a sampler and a schedule type; 1.8 one combined name."""
    if version == "1.8":
        return next(name for name in SCHEDULERS if legacy_sampler_name(name) == sampler)
    return from_a1111(sampler, schedule)


@pytest.mark.parametrize("version", ["1.9", "1.8"])
def test_every_exported_line_parses_and_runs_what_we_ran(tmp_path, version):
    from PIL import Image

    Image.new("RGB", (32, 32), "white").save(tmp_path / "sketch.png")
    schedulers = list(SCHEDULERS)
    spec = build_spec(
        study_data(
            factors={
                "style_a": ["Hokusai", "Frank Cho"],
                "style_b": ["Todd Hido"],
                "strength": [0.35, 0.75],
                "scheduler": schedulers,
            },
            design={"kind": "full"},
            generation={"mode": "img2img", "init_image": "sketch.png"},
        ),
        base_dir=tmp_path,
    )
    settings = [
        dict(zip(("style_a", "style_b", "strength", "scheduler"), combo))
        for combo in itertools.product(["Hokusai", "Frank Cho"], ["Todd Hido"], [0.35, 0.75], schedulers)
    ]
    rows = setting_rows(spec, ranked(settings, [0.1] * len(settings)))
    files = a1111_files(rows, spec, version)
    written = 0
    for _tag, (header, *lines) in files.items():
        assert header.startswith(f"# A1111 {version}") and len(set(lines)) == len(lines)
        strength = float(header.split("Denoising strength: ")[1].split(";")[0])
        schedule = header.split("Schedule type: ")[1].split(";")[0] if "Schedule type" in header else "Automatic"
        for line in lines:
            options = prompts_from_file_line(line, version)
            row = next(
                r
                for r in rows
                if r["prompt"] == options["prompt"]
                and r["strength"] == strength
                and ran_as(options["sampler_name"], schedule, version) == r["scheduler"]
            )
            assert (options["n_iter"], options["batch_size"], options["seed"]) == (row["images"], 1, row["seed"])
            assert (options["steps"], options["cfg_scale"], options["width"]) == (4, 7.5, 32)
            written += 1
    assert written == len(rows)  # every setting, none twice
