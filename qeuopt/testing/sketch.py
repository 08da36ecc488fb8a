"""The init image the demo ships: a line sketch drawn with PIL, so no binary is needed to
rebuild it (``studies/sketch.png`` is this drawing, checked by a test)."""

from __future__ import annotations

from pathlib import Path


def draw_sketch(path, size: tuple[int, int] = (256, 256)) -> Path:
    """Draw a line sketch of a figure on a beach (horizon, sun, waves, stick person), as PNG.

    It is the init image of the img2img demo: drawn from code so no asset is needed, with
    the shapes the demo prompt asks for, so a real model has a composition to follow.
    """
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    line = max(1, round(min(width, height) / 100))
    figure_x = width * 0.35
    _draw_sun(pen, width * 0.78, height * 0.2, min(width, height) * 0.08, line)
    _draw_sea(pen, width, height, line, keep_clear=figure_x)
    _draw_stick_figure(pen, figure_x, height, line)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _draw_sun(pen, cx: float, cy: float, r: float, line: int) -> None:
    import math

    pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline="black", width=line)
    for k in range(8):  # short rays around the disc
        dx, dy = math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)
        pen.line(
            [(cx + 1.4 * r * dx, cy + 1.4 * r * dy), (cx + 1.9 * r * dx, cy + 1.9 * r * dy)], fill="black", width=line
        )


def _draw_sea(pen, width: int, height: int, line: int, keep_clear: float) -> None:
    """Horizon, two rows of wave arcs (not across the figure), and a curved waterline."""
    pen.line([(0, height * 0.45), (width, height * 0.45)], fill="black", width=line)
    step = max(8, width // 8)
    for row, y in enumerate((height * 0.52, height * 0.6)):
        for x in range(row * step // 2, width, step):
            if abs(x + step * 0.3 - keep_clear) > step * 0.6:
                pen.arc([x, y, x + step * 0.6, y + step * 0.3], 200, 340, fill="black", width=line)
    shore = [(x, height * (0.7 + 0.12 * (x / width - 0.5) ** 2)) for x in range(0, width + 4, 4)]
    pen.line(shore, fill="black", width=line)


def _draw_stick_figure(pen, cx: float, height: int, line: int) -> None:
    """A figure facing the viewer: head against the sky, feet on the sand."""
    unit, head_y = height / 12, height * 0.36
    neck_y, hip_y, feet_y = head_y + unit * 0.6, height * 0.62, height * 0.9
    pen.ellipse(
        [cx - unit * 0.6, head_y - unit * 0.6, cx + unit * 0.6, head_y + unit * 0.6], outline="black", width=line
    )
    pen.line([(cx, neck_y), (cx, hip_y)], fill="black", width=line)
    arms = [(cx - unit * 1.2, neck_y + unit * 1.6), (cx, neck_y + unit * 0.4), (cx + unit * 1.2, neck_y + unit * 1.6)]
    pen.line(arms, fill="black", width=line)
    pen.line([(cx - unit * 0.8, feet_y), (cx, hip_y), (cx + unit * 0.8, feet_y)], fill="black", width=line)
