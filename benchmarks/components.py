"""Start-up time and CLIP scoring throughput, each measured side by side in one run.

    python benchmarks/components.py [--clip qeuopt-tiny:clip] [--images 48] [--repeat 5] [--size 512]

1. ``import qeuopt`` and ``qeuopt --help`` against a bare ``python -c pass``.
2. CLIP scoring with a new prompt per grid (as every condition of an array has): qeuopt
   (the grid's pixel array, resized on the model's device) against sentence-transformers
   as a script calls it (PIL images and the prompt per grid) and one image per call.
   Rates are per CPU second (the machine is shared); the ratio is against the script.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seconds(command: list[str], repeat: int) -> float:
    """Median CPU seconds (user + system) of a whole child process."""
    runs = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(runs)


def startup(repeat: int) -> None:
    python = sys.executable
    base = seconds([python, "-c", "pass"], repeat)
    rows = [
        ("python -c pass", base),
        ("python -c 'import qeuopt'", seconds([python, "-c", "import qeuopt"], repeat)),
        ("qeuopt --help", seconds([python, "-m", "qeuopt.cli.main", "--help"], repeat)),
    ]
    title = f"start-up, CPU s (median of {repeat})"
    print(f"{title:<32}{'s':>8}{'minus python':>14}")
    for name, value in rows:
        print(f"{name:<32}{value:>8.3f}{value - base:>14.3f}")


def clip_throughput(model: str, count: int, repeat: int, size: int) -> None:
    """Every grid has a new prompt, as every condition of an array does, so the text
    cache never hits; images are ``size`` x ``size`` as a pipeline returns them."""
    import numpy as np
    from PIL import Image

    from qeuopt.score.clip import ClipScorer

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
    pixels = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in coarse])
    images = [Image.fromarray(p) for p in pixels]
    scorer = ClipScorer(model)
    scorer.score(pixels[:2], "warm-up")  # load the model outside the timing
    st = scorer.model
    rounds = iter(range(10**9))

    def prompt(grid: int, round_: int) -> str:  # never seen before: the cache cannot help
        return f"portrait in the style of artist {round_}-{grid}, beach, high quality"

    def qeuopt_pixels(r):
        for g, start in enumerate(range(0, count, 6)):
            scorer.score(pixels[start : start + 6], prompt(g, r))

    def user_pil(r):  # what a script with sentence-transformers does per grid
        for g, start in enumerate(range(0, count, 6)):
            st.encode(images[start : start + 6], normalize_embeddings=True) @ st.encode(
                [prompt(g, r)], normalize_embeddings=True
            )[0]

    def one_by_one(r):
        for k, image in enumerate(images):
            st.encode([image], normalize_embeddings=True) @ st.encode([prompt(k // 6, r)], normalize_embeddings=True)[0]

    print(
        f"\nCLIP scoring, model {model}, {count} images of {size}x{size} in grids of 6, a new prompt per grid; "
        f"median of {repeat}, variants alternated"
    )
    variants = {
        "qeuopt: pixel array, torch preprocessing": qeuopt_pixels,
        "sentence-transformers: PIL grid + prompt": user_pil,
        "one image per call, prompt re-encoded": one_by_one,
    }
    times = {name: [] for name in variants}
    for _ in range(repeat):
        for name, work in variants.items():
            r = next(rounds)
            start = time.process_time()
            work(r)
            times[name].append(time.process_time() - start)
    base = statistics.median(times["sentence-transformers: PIL grid + prompt"])
    for name in variants:
        seconds = statistics.median(times[name])
        print(f"{name:<44}{count / seconds:>10.1f} images per CPU second{base / seconds:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", default="qeuopt-tiny:clip")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=512, help="image side, as the pipeline returns it")
    args = parser.parse_args()
    startup(args.repeat)
    clip_throughput(args.clip, args.images, args.repeat, args.size)


if __name__ == "__main__":
    main()
