"""What PNG's zlib level costs: CPU time and file size of one 512x512 image per level.

    python benchmarks/png_levels.py                       # three synthetic images
    python benchmarks/png_levels.py --image a.jpg b.jpg   # and photographs of yours

Images: *smooth* (colour gradients with a little grain, as a diffusion model's output
mostly is), *fields* (the occupancy benchmark's stand-in: 16-pixel colour blocks with 10%
grain) and *noise* (uniform random pixels, the worst case). CPU seconds of the calling
thread (``time.thread_time``) per save, best of ``--repeat``; PIL's ``compress_level``.
The pixels read back are the same at every level: zlib is lossless.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image


def synthetic(size: int = 512) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    smooth = np.stack([0.5 + 0.4 * np.sin(3 * x + 2 * y), 0.4 + 0.3 * np.cos(4 * y), 0.3 + 0.3 * x * y], -1)
    smooth = smooth + rng.normal(0, 0.02, smooth.shape)
    coarse = rng.random((size // 32, size // 32, 3)).repeat(32, 0).repeat(32, 1)
    fields = coarse * 0.9 + rng.random(coarse.shape) * 0.1
    noise = rng.random((size, size, 3))
    return {
        name: (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        for name, a in (("smooth", smooth), ("fields", fields), ("noise", noise))
    }


def measure(pixels: np.ndarray, level: int, repeat: int) -> tuple[float, int]:
    image, best = Image.fromarray(pixels), float("inf")
    for _ in range(repeat):
        buffer = io.BytesIO()
        start = time.thread_time()
        image.save(buffer, format="PNG", compress_level=level)
        best = min(best, time.thread_time() - start)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), pixels)
    return best, len(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", nargs="*", default=[], help="photographs, centre-cropped and resized to 512x512")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3, 4, 6, 9])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    images = synthetic()
    for path in args.image:
        photo = Image.open(path).convert("RGB")
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side)).resize((512, 512), Image.LANCZOS)
        images[Path(path).stem[:12]] = np.asarray(square)
    print(f"{'image':<13}{'level':>6}{'CPU ms':>9}{'KiB':>8}{'vs level 6 CPU':>16}{'size':>7}")
    for name, pixels in images.items():
        rows = {level: measure(pixels, level, args.repeat) for level in args.levels}
        base = rows.get(6, next(iter(rows.values())))
        for level, (cpu, size) in rows.items():
            print(
                f"{name:<8}{level:>6}{1000 * cpu:>9.1f}{size / 1024:>8.0f}{cpu / base[0]:>16.2f}{size / base[1]:>7.2f}"
            )


if __name__ == "__main__":
    main()
