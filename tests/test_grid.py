import numpy as np
from PIL import Image

from qeuopt.generate.grid import (
    format_parameters,
    labelled_grid,
    parse_parameters,
    read_parameters,
    save_png,
)


def test_a1111_layout_matches_what_a1111_writes():
    text = format_parameters(
        "a cat", "low quality, BW", {"Steps": 30, "Sampler": "Euler", "CFG scale": 8.0, "Seed": 1234, "Size": "512x512"}
    )
    assert text == (
        "a cat\nNegative prompt: low quality, BW\nSteps: 30, Sampler: Euler, CFG scale: 8.0, Seed: 1234, Size: 512x512"
    )


def test_png_metadata_round_trip(tmp_path):
    prompt = "((1girl:1.3), blue eye, in the style of Hokusai),\n(beach:1.1), high quality"
    negative = "low quality, BW, bad anatomy"
    fields = {
        "Steps": 30,
        "Sampler": "DPM++ 2M Karras",
        "CFG scale": 8.0,
        "Seed": 1234,
        "Size": "512x512",
        "Model": "v1-5: pruned, emaonly",
        "Denoising strength": 0.35,
    }
    image = Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8))
    path = save_png(image, tmp_path / "a.png", format_parameters(prompt, negative, fields))
    parsed = parse_parameters(read_parameters(path))
    assert parsed["prompt"] == prompt
    assert parsed["negative_prompt"] == negative
    assert parsed["Model"] == "v1-5: pruned, emaonly"  # JSON-quoted because of ',' and ':'
    assert parsed["Sampler"] == "DPM++ 2M Karras"
    assert {k: parsed[k] for k in ("Steps", "Seed", "Denoising strength")} == {
        "Steps": "30",
        "Seed": "1234",
        "Denoising strength": "0.35",
    }
    assert not list(tmp_path.glob("*.partial"))


def test_prompt_without_settings_line():
    assert parse_parameters("just a prompt") == {"prompt": "just a prompt", "negative_prompt": ""}


def test_labelled_grid_places_every_image():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [Image.new("RGB", (40, 30), c) for c in colours]
    grid = labelled_grid(images, 2, 2, ["style_a=Hokusai", "strength=0.35"], ["s1", "s2", "s3", "s4"])
    assert grid.width == 80
    pixels = np.asarray(grid)
    # the bottom-right image is the last colour, the top-left image the first
    assert tuple(pixels[-20, -5]) == colours[3]
    found = {tuple(pixels[y, 5]) for y in range(grid.height)}
    assert colours[0] in found and colours[2] in found


def test_small_grid_labels_are_cut_not_wrapped():
    from qeuopt.generate.grid import _font, grid_captions, shorten

    images = [Image.new("RGB", (32, 32), "grey")] * 6
    header = ["#3", "style_a = Tatsunoko Production", "style_b = Stephan Martiniere", "strength = 0.35"]
    grid = labelled_grid(images, 2, 3, header, grid_captions(range(1234, 1240), [0.3125] * 6))
    short = labelled_grid(images, 2, 3, ["#3", "a", "b", "c"], grid_captions(range(1234, 1240), [0.3125] * 6))
    assert grid.size == short.size  # one line per factor, however long its value
    font = _font(10)
    cut = shorten("style_a = Tatsunoko Production", font, 96 - 8)
    assert cut.endswith("\u2026") and font.getlength(cut) <= 88 and cut.startswith("style_a")
    assert shorten("#3", font, 88) == "#3"
    assert grid_captions([7, 8], [0.31249, -0.05]) == ["0.312  seed 7", "-0.050  seed 8"]
    assert shorten("0.312  seed 1234", font, 48 - 8).startswith("0.312")  # a 48-pixel cell keeps the score
    from qeuopt.generate.grid import _fit_caption

    assert _fit_caption("0.312  seed 1234", font, 200) == "0.312  seed 1234"
    assert _fit_caption("0.312  seed 1234", font, 64 - 8) == "0.312 s1234"  # a 64-pixel cell: seed shortened
    assert grid_captions([7]) == ["seed 7"]
