"""LoRA styles as factors: two tiny LoRAs, loaded once as peft adapters, switched per condition."""

import numpy as np
import pytest
from PIL import Image

from qeuopt.config.load import build_spec
from qeuopt.errors import StudyError
from qeuopt.generate.grid import read_parameters
from qeuopt.generate.infotext import lora_hash
from qeuopt.run.study import Study
from qeuopt.testing.tiny import TINY_SD, resolve_model
from tests.a1111_rules import parse_generation_parameters
from tests.studies import study_data


def make_tiny_lora(path, seed: int):
    """A LoRA for the tiny model's UNet attention (random, so it visibly changes images)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(resolve_model(TINY_SD))
    torch.manual_seed(seed)
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=layers, weight_name=path.name)
    return path


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return {name: make_tiny_lora(folder / f"{name}.safetensors", seed) for seed, name in enumerate(("ink", "paper"))}


def lora_study(folder, loras, **changes):
    data = study_data(
        prompt={"template": "portrait, beach, <lora:{style}:{weight}>", "negative": "low quality"},
        factors={"style": ["ink", "paper"], "weight": [0.5, 1.0]},
        design={"kind": "full"},
        loras={name: str(path) for name, path in loras.items()},
        generation={"model": TINY_SD, "device": "cpu", "steps": 3, "width": 64, "height": 64, "grid": [1, 1]},
        scoring={"clip_model": "qeuopt-tiny:clip"},
    )
    data.update(changes)
    return build_spec(data, base_dir=folder)


def test_two_loras_and_their_weight_as_factors_with_one_pipeline_load(tmp_path, monkeypatch, loras):
    monkeypatch.chdir(tmp_path)
    study = Study.from_spec(lora_study(tmp_path, loras))
    generator = study.default_generator()
    study.run(generator, progress=False)
    assert generator.pipeline_loads == 1
    pipe = generator.pipeline("txt2img")
    assert set(pipe.get_list_adapters()["unet"]) == {"ink", "paper"}
    images, hashes = {}, {}
    for folder in sorted((tmp_path / "outputs" / "unit").iterdir()):
        png = next(folder.glob("00_seed*.png"))
        fields = parse_generation_parameters(read_parameters(png))
        name = fields["Prompt"].split("<lora:")[1].split(":")[0]
        hashes[name] = fields["Lora hashes"]
        images[fields["Prompt"]] = np.asarray(Image.open(png), dtype=int)
    assert hashes == {name: f"{name}: {lora_hash(path)}" for name, path in loras.items()}
    assert len(images) == 4
    pixels = list(images.values())
    assert all(np.abs(a - b).max() > 0 for k, a in enumerate(pixels) for b in pixels[k + 1 :])  # 4 distinct grids


def test_switching_adapters_is_exact_and_needs_no_reload(tmp_path, loras):
    from qeuopt.config.spec import GenerationSettings

    spec = lora_study(tmp_path, loras)
    generator = Study.from_spec(spec).default_generator()
    settings = GenerationSettings(model=TINY_SD, device="cpu", steps=3, width=64, height=64)
    plain = generator.generate("portrait, beach", "", settings, [1])[0]
    styled = generator.generate("portrait, beach, <lora:ink:1.0>", "", settings, [1])[0]
    again = generator.generate("portrait, beach", "", settings, [1])[0]
    assert np.abs(np.asarray(plain, dtype=int) - np.asarray(styled, dtype=int)).max() > 0
    assert np.array_equal(np.asarray(plain), np.asarray(again))  # adapters off: the base model again
    assert generator.pipeline_loads == 1


def test_lora_settings_are_validated(tmp_path, loras):
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(StudyError) as caught:
        lora_study(
            tmp_path,
            {"ink": loras["ink"], "paper": tmp_path / "model.ckpt", "gone": tmp_path / "no.safetensors"},
            prompt={
                "template": "a <lora:{style}:{weight}> <lora:ink:x>",
                "negative": "<lora:ink:1>",
                "syntax": "a1111",
            },
        )
    text = str(caught.value)
    assert "`loras.paper`: a .safetensors file is allowed" in text
    assert "`loras.gone`: file not found" in text
    assert "<lora:ink:x>: a finite number is allowed as weight" in text
    assert "`prompt.negative`: LoRA tags apply to the prompt only" in text
    with pytest.raises(StudyError, match=r"<lora:nope:0.5> names no LoRA of `\[loras\]`"):
        lora_study(tmp_path, loras, factors={"style": ["nope"], "weight": [0.5]})
    with pytest.raises(StudyError, match="`prompt.syntax`: allowed: a1111, compel, plain; given 'sdxl'"):
        lora_study(tmp_path, loras, prompt={"template": "a", "syntax": "sdxl"})
    with pytest.raises(StudyError, match="`prompt.template`: alternation"):
        lora_study(tmp_path, loras, prompt={"template": "a [cat|dog] <lora:{style}:{weight}>"})
