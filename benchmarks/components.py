"""Start-up time and CLIP scoring throughput, each measured side by side in one run.

    python benchmarks/components.py [--clip qeuopt-tiny:clip] [--images 48] [--repeat 5]

1. ``import qeuopt`` and ``qeuopt --help`` against a bare ``python -c pass``.
2. CLIP scoring: a grid's images encoded in one batch with the prompt embedding cached
   (what qeuopt does) against one image per call with the prompt encoded every time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seconds(command: list[str], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def startup(repeat: int) -> None:
    python = sys.executable
    base = seconds([python, "-c", "pass"], repeat)
    rows = [("python -c pass", base),
            ("python -c 'import qeuopt'", seconds([python, "-c", "import qeuopt"], repeat)),
            ("qeuopt --help", seconds([python, "-m", "qeuopt.cli.main", "--help"], repeat))]
    print(f"{'start-up (median of %d)' % repeat:<32}{'s':>8}{'minus python':>14}")
    for name, value in rows:
        print(f"{name:<32}{value:>8.3f}{value - base:>14.3f}")


def clip_throughput(model: str, count: int, repeat: int) -> None:
    import numpy as np
    from PIL import Image

    from qeuopt.score.clip import ClipScorer

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(count)]
    prompt = "portrait in the style of Hokusai, beach in the style of Rinko Kawauchi, high quality"
    scorer = ClipScorer(model)
    scorer.score(images[:2], prompt)  # load the model outside the timing

    def batched():
        for start in range(0, count, 6):  # grids of six, as a 2x3 study scores them
            scorer.score(images[start:start + 6], prompt)

    def one_by_one():
        for image in images:
            scorer._text_cache.clear()
            scorer.score([image], prompt)

    print(f"\nCLIP scoring, model {model}, {count} images, median of {repeat}")
    results = {}
    for name, work in (("qeuopt: grid batches, cached prompt", batched),
                       ("naive: one image per call, prompt re-encoded", one_by_one)):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        results[name] = count / statistics.median(times)
        print(f"{name:<48}{results[name]:>10.1f} images/s")
    fast, slow = results.values()
    print(f"ratio {fast / slow:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", default="qeuopt-tiny:clip")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    startup(args.repeat)
    clip_throughput(args.clip, args.images, args.repeat)


if __name__ == "__main__":
    main()
