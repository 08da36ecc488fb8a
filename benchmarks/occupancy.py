"""How busy qeuopt keeps the GPU: a stand-in GPU that is busy a fixed time per grid.

    python benchmarks/occupancy.py                          # 0.5, 1, 2, 4 s per grid, L9
    python benchmarks/occupancy.py --seconds 2 --inline     # and with overlap_logging off
    python benchmarks/occupancy.py --seconds 0.05 --full    # 243 conditions: memory over time

The generator sleeps (GIL-free, as a CUDA stream is) for ``--seconds`` per grid, then
hands over six real 512x512 images as one uint8 array, as qeuopt's diffusers generator
does (it converts the decoded floats to 8 bits on the GPU, within the grid's time;
``--cpu-convert`` does that conversion on the generating thread instead, as diffusers'
PIL output does). Everything else is real and runs as ``Study.run`` runs it:
CLIP on the tiny model (a new prompt per condition), PNG encoding with A1111 metadata,
the labelled grid, MLflow runs and artifacts in SQLite, Optuna. Occupancy is the
generator's busy time over the wall time from its first call to the end of the run
(pending files included). Target: at least 0.95 at 2 s per grid.

A worker runs two lanes (``qeuopt.run.lanes``): while one renders, the other records;
``--inline`` runs one lane with no writer thread (``tracking.overlap_logging = false``).
``idle ms/cond`` is what the measured wall time left per condition; ``CPU ms/cond`` is
the whole process's CPU per condition (every thread), ``writer ms/cond`` the writer
thread's wall time per condition's files and artifacts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class SleepingGPU:
    """A generator whose 'GPU' is busy ``seconds`` per grid; images like SD's output."""

    model = "stand-in-gpu"

    def __init__(self, seconds: float, size: int = 512, pool: int = 12, cpu_convert: bool = False, launches: int = 0):
        self.seconds, self.busy, self.first_call, self.rss = seconds, 0.0, None, []
        self.launches = launches
        self.last_end, self.gaps = None, 0.0  # idle between two grids (the tail comes after the last)
        self.cpu_convert = cpu_convert
        rng = np.random.default_rng(0)
        # smooth colour fields plus fine grain: compresses like a photo, not like noise
        coarse = rng.random((pool, size // 32, size // 32, 3), dtype=np.float32)
        smooth = coarse.repeat(32, axis=1).repeat(32, axis=2)
        self.decoded = np.clip(smooth * 0.9 + rng.random(smooth.shape, dtype=np.float32) * 0.1, 0, 1)

        self.pixels = (self.decoded * 255).round().astype(np.uint8)  # as the GPU converts them

    def generate_pixels(self, prompt, negative, settings, seeds, init_image=None):
        start = time.perf_counter()
        if self.first_call is None:
            self.first_call, self.first_cpu = start, time.process_time()
        if self.last_end is not None:
            self.gaps += start - self.last_end
        if self.launches:  # the host launches kernels one by one, taking the GIL for each
            deadline = start
            for _ in range(self.launches):
                deadline += self.seconds / self.launches
                time.sleep(max(0.0, deadline - time.perf_counter()))  # the GIL is free while "the GPU" runs
            # the GPU's work is the nominal time: the rest was the host waiting for the GIL
            self.busy += self.seconds
        else:
            time.sleep(self.seconds)
            self.busy += time.perf_counter() - start
        self.last_end = time.perf_counter()
        self.rss.append(rss_mib())
        picks = [(s + len(prompt)) % len(self.decoded) for s in seeds]
        if self.cpu_convert:  # diffusers' PIL output: numpy on the generating thread
            return np.stack([np.asarray(i) for i in self._pil((self.decoded[picks] * 255).round().astype(np.uint8))])
        return self.pixels[picks]

    def generate(self, prompt, negative, settings, seeds, init_image=None):
        return self._pil(self.generate_pixels(prompt, negative, settings, seeds, init_image))

    @staticmethod
    def _pil(pixels):
        from PIL import Image

        return [Image.fromarray(p) for p in pixels]

    def sampler_label(self, scheduler: str) -> str:
        return "Euler"


def study_data(name: str, full: bool, overlap: bool, png: int | None = None) -> dict:
    factors = {
        "style_a": ["Richard Dadd", "Hokusai", "Frank Cho"],
        "style_b": ["Rinko Kawauchi", "Todd Hido", "Claude Monet"],
        "guidance": [6.0, 8.0, 10.0],
        "steps": [28, 30, 32],
    }
    if full:
        factors["strength"] = [0.35, 0.45, 0.75]
    return {
        "name": name,
        "prompt": {
            "template": "portrait in the style of {style_a}, beach in the style of {style_b}, high quality",
            "negative": "low quality",
        },
        "factors": factors,
        "design": {"kind": "full" if full else "L9"},
        "generation": {"mode": "txt2img", "width": 512, "height": 512, "grid": [2, 3]},
        "scoring": {"clip_model": "qeuopt-tiny:clip"},
        "tracking": {"overlap_logging": overlap, **({"png_compression": png} if png is not None else {})},
    }


def measure(
    seconds: float, overlap: bool, full: bool, scorer, cpu_convert: bool = False, png=None, launches: int = 0
) -> dict:
    from qeuopt.run.study import Study

    folder, cwd = tempfile.mkdtemp(prefix="qeuopt-occupancy-"), os.getcwd()
    os.chdir(folder)
    try:
        data = study_data(f"occ{'full' if full else ''}", full, overlap, png)
        study = Study(data.pop("name"), data.pop("prompt"), data.pop("factors"), **data)
        gpu = SleepingGPU(seconds, cpu_convert=cpu_convert, launches=launches)
        cpu0 = time.process_time()
        summary = study.run(gpu, scorer, progress=False)
        end, cpu = time.perf_counter(), time.process_time()
        wall = end - gpu.first_call
        return {
            "occupancy": gpu.busy / wall,
            "wall": wall,
            "busy": gpu.busy,
            "n": summary.ran,
            "run_cpu": cpu - gpu.first_cpu,  # from the first grid on, as the wall time
            "gaps": gpu.gaps,
            "tail": end - gpu.last_end,  # the last condition recorded and written, the GPU idle
            "cpu": cpu - cpu0,
            "timings": summary.timings,
            "rss": gpu.rss,
        }
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--inline", action="store_true", help="also run with tracking.overlap_logging = false")
    parser.add_argument("--full", action="store_true", help="a 3^5 full factorial (243 conditions), not an L9")
    parser.add_argument(
        "--cpu-convert", action="store_true", help="8-bit conversion on the CPU, as diffusers' PIL output"
    )
    parser.add_argument("--png", type=int, help="tracking.png_compression (default: the study default)")
    parser.add_argument(
        "--launches",
        type=int,
        default=0,
        help="split each grid into this many GIL-free waits, the GIL taken between them, as a "
        "host thread launching CUDA kernels does (0: one sleep per grid)",
    )
    args = parser.parse_args()

    from qeuopt.score.clip import ClipScorer

    scorer = ClipScorer("qeuopt-tiny:clip")
    scorer.score(np.zeros((1, 64, 64, 3), np.uint8), "warm-up")  # the model loads outside the timing
    import torch

    print(
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f}; 512x512, 2x3 grid, tiny CLIP, real PNG + MLflow"
    )
    print(
        f"{'s/grid':>7} {'mode':<8} {'conds':>5} {'occupancy':>10} {'wall s':>8} {'idle ms/cond':>13} "
        f"{'gaps ms/cond':>13} {'tail s':>7} {'CPU ms/cond':>12} {'writer ms/cond':>15} {'waited s':>9} {'CPU s':>7}"
    )
    modes = [True, False] if args.inline else [True]
    for seconds in args.seconds:
        for overlap in modes:
            r = measure(seconds, overlap, args.full, scorer, args.cpu_convert, args.png, args.launches)
            t, n = r["timings"], r["n"]
            print(
                f"{seconds:>7.2f} {'lanes' if overlap else 'inline':<8} {n:>5} {r['occupancy']:>10.3f} "
                f"{r['wall']:>8.1f} {1000 * (r['wall'] - r['busy']) / n:>13.0f} {1000 * r['gaps'] / max(1, n - 1):>13.0f} {r['tail']:>7.2f} "
                f"{1000 * r['run_cpu'] / n:>12.0f} "
                f"{1000 * t.write / n:>15.0f} {t.wait:>9.2f} {r['cpu']:>7.1f}"
            )
            if args.full:
                rss, quarter = r["rss"], max(1, len(r["rss"]) // 4)
                print(
                    f"        RSS MiB at conditions 1, {quarter}, {2 * quarter}, {3 * quarter}, {len(rss)}: "
                    + ", ".join(f"{rss[i]:.0f}" for i in (0, quarter - 1, 2 * quarter - 1, 3 * quarter - 1, -1))
                )


if __name__ == "__main__":
    main()
