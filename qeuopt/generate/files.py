"""The files of a condition: ``NN_seedS.png`` per image (grid order, then the seed it
was drawn from) and ``grid.png``. Written and read only through this module."""

from __future__ import annotations

import re
from pathlib import Path

GRID_FILE = "grid.png"
_IMAGE_FILE = re.compile(r"^(\d+)_seed(-?\d+)\.png$")


def image_name(index: int, seed: int) -> str:
    """``00_seed1234.png``: two digits keep up to 100 cells sorted; more get three."""
    return f"{index:02d}_seed{seed}.png"


def parse_image_name(name: str) -> tuple[int, int] | None:
    """``(index, seed)`` of an image file name; None for any other file."""
    match = _IMAGE_FILE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def condition_images(folder: Path) -> list[Path]:
    """The PNGs of a condition folder in grid order."""
    named = [(parse_image_name(path.name), path) for path in Path(folder).glob("*.png")]
    return [path for parsed, path in sorted((p for p in named if p[0]), key=lambda p: p[0][0])]
