"""How much time qeuopt adds around the pipeline call, measured side by side in one run.

    python benchmarks/overhead.py                      # the demo study on the tiny model
    python benchmarks/overhead.py --study S --repeat 2 # any study (a real model on a GPU)

(a) a notebook-style loop: a new pipeline per condition, one call per image;
(b) a bare loop done well: one pipeline kept, one batched call per grid;
(c) ``qeuopt run``: (b) plus PNG metadata, grid, CLIP scoring and MLflow logging.

qeuopt's own overhead is (c) minus its pipeline calls minus the CLIP forward pass; the
target is under 50 ms per image (5% of one SD 1.5 512x512 30-step image on a modern GPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_loop(spec, rows, init_image, *, batched: bool) -> float:
    """Seconds for a plain diffusers loop over the conditions (no saving, no scoring)."""
    import torch

    from qeuopt.generate.diffusion import DiffusionGenerator
    from qeuopt.run.condition import seeds_for

    start, generator = time.perf_counter(), None
    for values in rows:
        if generator is None or not batched:  # the notebook reloads the model per condition
            generator = DiffusionGenerator(spec.generation, base_dir=spec.base_dir)
        settings, prompt = spec.settings_for(values), spec.prompt.render(values)
        seeds = seeds_for(settings)
        calls = [seeds] if batched else [[s] for s in seeds]
        for chunk in calls:
            generator.generate(prompt, spec.prompt.negative, settings, chunk, init_image)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def qeuopt_run(spec):
    """Wall seconds and stage timings of a real ``Study.run`` in a scratch folder."""
    from qeuopt.run.study import Study

    folder = tempfile.mkdtemp(prefix="qeuopt-bench-")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        start = time.perf_counter()
        summary = Study.from_spec(spec).run(progress=False)
        return time.perf_counter() - start, summary.timings
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default=str(ROOT / "qeuopt" / "data" / "demo_tiny_l9.toml"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant; medians are shown")
    args = parser.parse_args()

    from qeuopt.run.queue import design_rows
    from qeuopt.run.study import Study
    from qeuopt.testing.tiny import resolve_model

    spec = Study.from_file(args.study).spec
    resolve_model(spec.generation.model), resolve_model(spec.scoring.clip_model)  # build tiny models first
    rows, init_image = design_rows(spec), Study.from_spec(spec).init_image()
    images = len(rows) * spec.generation.images_per_condition
    bare_loop(spec, rows[:1], init_image, batched=True)  # warm caches and kernels

    naive, good, ours, stages = [], [], [], []
    for _ in range(args.repeat):
        naive.append(bare_loop(spec, rows, init_image, batched=False))
        good.append(bare_loop(spec, rows, init_image, batched=True))
        wall, timings = qeuopt_run(spec)
        ours.append(wall)
        stages.append(timings)
    report(spec, len(rows), images, naive, good, ours, stages)


def report(spec, conditions, images, naive, good, ours, stages) -> None:
    med = statistics.median
    per_cond = lambda seconds: 1000 * seconds / conditions  # noqa: E731
    gen, score = med(t.generate for t in stages), med(t.score for t in stages)
    log, other = med(t.log for t in stages), med(t.other for t in stages)
    setup = med(ours) - gen - score - log - other
    own = med(ours) - gen - score  # everything qeuopt adds around the two model calls
    print(f"study {spec.name}: {conditions} conditions x {spec.generation.images_per_condition} images, "
          f"model {spec.generation.model}, median of {len(ours)} runs\n")
    print(f"{'variant':<44}{'total s':>9}{'ms/condition':>14}")
    for name, value in (("(a) notebook loop: reload, 1 call per image", med(naive)),
                        ("(b) bare loop done well: batched grids", med(good)),
                        ("(c) qeuopt run (score + MLflow + PNGs)", med(ours))):
        print(f"{name:<44}{value:>9.2f}{per_cond(value):>14.1f}")
    print(f"\n(c) per condition: generate {per_cond(gen):.1f} ms, CLIP {per_cond(score):.1f} ms, "
          f"logging {per_cond(log):.1f} ms, other {per_cond(other):.1f} ms; one-time set-up {setup:.2f} s")
    print(f"ratio (c)/(b) = {med(ours) / med(good):.2f}   ratio (a)/(c) = {med(naive) / med(ours):.2f}")
    print(f"qeuopt overhead (c minus pipeline and CLIP calls): {1000 * own / images:.1f} ms/image "
          f"(target < 50 ms/image); excluding one-time set-up: {1000 * (own - setup) / images:.1f} ms/image")


if __name__ == "__main__":
    main()
