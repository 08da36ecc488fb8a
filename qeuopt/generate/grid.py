"""PNG files that AUTOMATIC1111, Forge and image browsers can read, and labelled grids.

A1111 keeps generation data in a PNG text chunk named ``parameters``::

    <prompt>
    Negative prompt: <negative prompt>
    Steps: 30, Sampler: Euler, CFG scale: 8.0, Seed: 1234, Size: 512x512, Model: ...

Values that contain ``,``, ``:`` or a newline are written JSON-quoted, as A1111 does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

NEGATIVE_PREFIX = "Negative prompt: "
# key: value pairs of the last line; a value is either JSON-quoted or runs to the next comma
_PAIR = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def format_parameters(prompt: str, negative: str, fields: Mapping[str, Any]) -> str:
    """The ``parameters`` text for one image; ``fields`` in A1111's order and names."""
    lines = [prompt]
    if negative:
        lines.append(NEGATIVE_PREFIX + negative)
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items()))
    return "\n".join(lines)


def parse_parameters(text: str) -> dict[str, str]:
    """Read ``parameters`` text back: ``prompt``, ``negative_prompt`` and every field."""
    *head, last = text.strip("\n").split("\n")
    if not _PAIR.match(last) or ":" not in last:  # no settings line: it is all prompt
        head, last = head + [last], ""
    prompt_lines, negative_lines = [], []
    for line in head:
        if negative_lines or line.startswith(NEGATIVE_PREFIX):
            negative_lines.append(line.removeprefix(NEGATIVE_PREFIX))
        else:
            prompt_lines.append(line)
    result = {"prompt": "\n".join(prompt_lines), "negative_prompt": "\n".join(negative_lines)}
    for key, value in _PAIR.findall(last):
        result[key.strip()] = json.loads(value) if value.startswith('"') else value.strip()
    return result


def save_png(image: Image.Image, path: str | Path, parameters: str | None, level: int = 6) -> Path:
    """Save with the ``parameters`` chunk (none if None) at zlib ``level`` (lossless at any:
    lower is less CPU, larger files); written beside then renamed, never half-written."""
    path = Path(path)
    info = PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    partial = path.with_name(path.name + ".partial")
    image.save(partial, format="PNG", pnginfo=info, compress_level=level)
    partial.replace(path)
    return path


def read_parameters(path: str | Path) -> str | None:
    with Image.open(path) as image:
        return image.text.get("parameters")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def labelled_grid(
    images: Sequence[Image.Image], rows: int, cols: int, header: Sequence[str], captions: Sequence[str] = ()
) -> Image.Image:
    """Images in rows x cols under a header, one line per factor level, each image with a
    caption. A line too long for the space is cut with an ellipsis, never wrapped, so a
    value never breaks across lines and every line stays one factor."""
    width, height = images[0].size
    size = max(10, min(24, cols * width // 24))
    font, line = _font(size), size + 4
    header = [shorten(text, font, cols * width - 8) for text in header]
    captions = [_fit_caption(text, font, width - 8) for text in captions]
    header_h, caption_h = line * len(header) + 8, line if captions else 0
    cell_h = height + caption_h
    grid = Image.new("RGB", (cols * width, header_h + rows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    for i, text in enumerate(header):
        draw.text((4, 4 + i * line), text, fill="black", font=font)
    for k, image in enumerate(images):
        x, y = (k % cols) * width, header_h + (k // cols) * cell_h
        grid.paste(image.convert("RGB"), (x, y))
        if captions:
            draw.text((x + 4, y + height + 2), captions[k], fill="black", font=font)
    return grid


def shorten(text: str, font, width: float) -> str:
    """``text`` cut to fit ``width`` pixels in ``font``, ending in an ellipsis when cut."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "\u2026") > width:
        text = text[:-1]
    return text.rstrip() + "\u2026"


def _fit_caption(text: str, font, width: float) -> str:
    """A caption as it fits: whole, then with ``seed`` shortened to ``s``, then cut."""
    short = text.replace("  seed ", " s")
    return text if font.getlength(text) <= width else shorten(short, font, width)


def grid_captions(seeds: Sequence[int], scores: Sequence[float] = ()) -> list[str]:
    """Under each image: its score first (what a cut caption must keep), then its seed."""
    if not scores:
        return [f"seed {seed}" for seed in seeds]
    return [f"{score:.3f}  seed {seed}" for seed, score in zip(seeds, scores)]
