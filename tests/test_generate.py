"""The diffusers generator and the CLIP scorer on the tiny offline models."""

import warnings

import numpy as np
import pytest

from qeuopt.config.spec import GenerationSettings
from qeuopt.generate.diffusion import DiffusionGenerator
from qeuopt.score.clip import ClipScorer
from qeuopt.testing.sketch import draw_sketch
from qeuopt.testing.tiny import TINY_CLIP, TINY_SD

PROMPT = "portrait in the style of Hokusai, beach, high quality"


@pytest.fixture(scope="module")
def generator():
    return DiffusionGenerator(GenerationSettings(model=TINY_SD, device="cpu"))


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    from PIL import Image

    return Image.open(draw_sketch(tmp_path_factory.mktemp("init") / "sketch.png")).convert("RGB")


@pytest.mark.parametrize("mode", ["txt2img", "img2img"])
@pytest.mark.parametrize("scheduler", ["default", "euler_a"])
def test_batched_grid_equals_images_made_one_by_one(generator, sketch, mode, scheduler):
    settings = GenerationSettings(mode=mode, steps=6, width=64, height=64, strength=0.5, scheduler=scheduler)
    seeds = [7, 8, 9, 10]
    grid = generator.generate(PROMPT, "low quality", settings, seeds, sketch)
    assert len(grid) == 4 and grid[0].size == (64, 64)
    for k in (0, 3):
        alone = generator.generate(PROMPT, "low quality", settings, [seeds[k]], sketch)[0]
        diff = np.abs(np.asarray(grid[k], dtype=int) - np.asarray(alone, dtype=int)).max()
        assert diff <= 1, f"image {k} differs by {diff} levels"  # float rounding of one 8-bit level
    assert np.abs(np.asarray(grid[0], dtype=int) - np.asarray(grid[1], dtype=int)).max() > 10


def test_one_pipeline_kept_for_the_study(generator, sketch):
    settings = GenerationSettings(mode="img2img", steps=4, width=64, height=64, strength=0.5)
    generator.generate(PROMPT, "", settings, [1], sketch)
    first = generator.pipeline("txt2img")
    generator.generate(PROMPT, "", settings, [2], sketch)
    assert generator.pipeline("txt2img") is first
    assert generator.pipeline("img2img").unet is first.unet  # img2img shares the components
    assert generator.a1111_sampler("dpmpp_2m_karras") == ("DPM++ 2M", "Karras")
    assert generator.a1111_sampler("default") == ("PLMS", "Automatic")  # the tiny model ships PNDM


def test_pickle_checkpoint_refused_before_loading(tmp_path):
    from qeuopt.errors import UnsafeCheckpointError

    (tmp_path / "model.ckpt").write_bytes(b"not a real checkpoint")
    gen = DiffusionGenerator(GenerationSettings(model=str(tmp_path / "model.ckpt"), device="cpu"))
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle"):
        gen.pipeline("txt2img")


def test_missing_model_is_a_clear_error(tmp_path):
    from qeuopt.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="`generation.model`"):
        DiffusionGenerator(GenerationSettings(model=str(tmp_path / "no-such-folder"), device="cpu")).pipeline("txt2img")


def test_clip_scores_are_cosines_and_text_is_encoded_once(generator, sketch):
    scorer = ClipScorer(TINY_CLIP)
    images = generator.generate(PROMPT, "", GenerationSettings(steps=3, width=64, height=64), [1, 2, 3])
    first = scorer.score(images, PROMPT)
    again = scorer.score(images, PROMPT)
    assert first.shape == (3,) and np.all(np.abs(first) <= 1.0 + 1e-6)
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert list(scorer._text_cache) == [PROMPT]
    single = scorer.score(images[:1], PROMPT)
    np.testing.assert_allclose(single[0], first[0], atol=1e-5)  # batching does not change scores


def test_long_text_warns_about_truncation():
    scorer = ClipScorer(TINY_CLIP)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scorer.text_embedding(" ".join(["zebra quokka"] * 60))
        scorer.text_embedding(PROMPT)
    assert sum("truncated" in str(w.message) for w in caught) == 1


def test_memory_settings_keep_images_the_same(generator):
    settings = GenerationSettings(
        model=TINY_SD,
        device="cpu",
        steps=3,
        width=64,
        height=64,
        channels_last=True,
        attention_slicing=True,
        vae_slicing=True,
    )
    tuned = DiffusionGenerator(settings).generate(PROMPT, "", settings, [5, 6])
    plain = generator.generate(PROMPT, "", settings, [5, 6])
    for a, b in zip(tuned, plain):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 2


def test_pixels_are_diffusers_own_8_bit_conversion_bit_for_bit(generator):
    import torch
    from diffusers.image_processor import VaeImageProcessor

    from qeuopt.generate.diffusion import to_pixels

    def diffusers_pil(decoded):
        images = VaeImageProcessor.numpy_to_pil(VaeImageProcessor.pt_to_numpy(decoded))
        return np.stack([np.asarray(image) for image in images])

    # every half level (where rounding decides), in float32 and float16
    halves = ((torch.arange(3 * 3 * 16 * 16) % 511) / 510).reshape(3, 3, 16, 16)  # x 255 = k / 2
    for decoded in (halves, halves.half(), torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))):
        assert np.array_equal(to_pixels(decoded), diffusers_pil(decoded))
    pipe = generator.pipeline("txt2img")
    call = dict(prompt=PROMPT, num_inference_steps=2, width=64, height=64, num_images_per_prompt=2)
    made = [pipe(**call, generator=torch.Generator().manual_seed(4), output_type=kind).images for kind in ("pt", "pil")]
    assert np.array_equal(to_pixels(made[0]), np.stack([np.asarray(image) for image in made[1]]))
    settings = GenerationSettings(steps=2, width=64, height=64)
    pixels = generator.generate_pixels(PROMPT, "", settings, [1, 2])
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 64, 64, 3)
    assert np.array_equal(pixels, np.stack([np.asarray(i) for i in generator.generate(PROMPT, "", settings, [1, 2])]))
