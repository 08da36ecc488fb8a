"""Running one condition: generate its grid, save the PNGs, score them, record the run.

Files of a condition are written into a ``.partial`` folder that is renamed only when
the condition is complete, so an interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from qeuopt.generate.grid import format_parameters, labelled_grid, save_png
from qeuopt.score.clip import summarize
from qeuopt.space import Condition, GenerationSettings, StudySpec


class Generator(Protocol):
    model: str

    def generate(self, prompt: str, negative: str, settings: GenerationSettings,
                 seeds: Sequence[int], init_image=None) -> list: ...

    def sampler_label(self, scheduler: str) -> str: ...


class Scorer(Protocol):
    def score(self, images: Sequence, text: str): ...


@dataclass
class Timings:
    """Seconds spent per stage, summed over the conditions run."""

    generate: float = 0.0
    score: float = 0.0
    log: float = 0.0
    other: float = 0.0
    conditions: int = 0
    images: int = 0

    def timed(self) -> float:
        return self.generate + self.score + self.log

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - start)


@dataclass
class ConditionResult:
    condition: Condition
    prompt: str
    seeds: list[int]
    scores: list[float]
    summary: dict[str, float]
    folder: Path
    run_id: str


def seeds_for(settings: GenerationSettings) -> list[int]:
    """One seed per grid cell, derived from the condition's seed."""
    return [int(settings.seed) + k for k in range(settings.images_per_condition)]


def a1111_fields(settings: GenerationSettings, seed: int, sampler: str, model: str) -> dict[str, Any]:
    fields = {"Steps": settings.steps, "Sampler": sampler, "CFG scale": settings.guidance, "Seed": seed,
              "Size": f"{settings.width}x{settings.height}", "Model": Path(model).stem or model}
    if settings.mode == "img2img":
        fields["Denoising strength"] = settings.strength
    return fields


class ConditionRunner:
    """Runs conditions of one study with a loaded generator, scorer and tracker."""

    def __init__(self, spec: StudySpec, generator: Generator, scorer: Scorer, tracker, parent_run: str,
                 init_image=None):
        self.spec, self.generator, self.scorer, self.tracker = spec, generator, scorer, tracker
        self.parent_run, self.init_image = parent_run, init_image
        self.timings = Timings()
        self.output = Path(spec.tracking.output_dir) / spec.name

    def run(self, condition: Condition, on_run_created=None) -> ConditionResult:
        """Generate, save, score and record one condition.

        ``on_run_created(run_id)`` is called as soon as the MLflow run exists, so the
        Optuna trial can point at it even if a later step fails.
        """
        start, timed_before = time.perf_counter(), self.timings.timed()
        spec, values = self.spec, condition.values
        settings = spec.settings_for(values)
        prompt, seeds = spec.prompt.render(values), seeds_for(settings)
        with self.timings.stage("generate"):
            images = self.generator.generate(prompt, spec.prompt.negative, settings, seeds, self.init_image)
        final = self.output / f"c{condition.number:03d}"
        partial = final.with_name(final.name + ".partial")
        try:
            files, grid = self._save(partial, condition, settings, prompt, seeds, images)
            with self.timings.stage("score"):
                text = spec.scoring.text.format(**values) if spec.scoring.text else prompt
                scores = [float(s) for s in self.scorer.score(images, text)]
            summary = summarize(scores)
            with self.timings.stage("log"):
                run_id = self._record(condition, settings, prompt, seeds, scores, summary, files, grid,
                                      final, on_run_created)
            shutil.rmtree(final, ignore_errors=True)  # left by an earlier attempt of this number
            partial.rename(final)
            self.tracker.finish(run_id)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        self.timings.conditions += 1
        self.timings.images += len(images)
        self.timings.other += time.perf_counter() - start - (self.timings.timed() - timed_before)
        return ConditionResult(condition, prompt, seeds, scores, summary, final, run_id)

    def _save(self, partial: Path, condition, settings, prompt, seeds, images):
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        sampler = self.generator.sampler_label(settings.scheduler)
        files = []
        for k, (image, seed) in enumerate(zip(images, seeds)):
            text = format_parameters(prompt, self.spec.prompt.negative,
                                     a1111_fields(settings, seed, sampler, self.generator.model))
            files.append(save_png(image, partial / f"{k:02d}_seed{seed}.png", text))
        header = [f"#{condition.number}"] + [f"{k} = {v}" for k, v in condition.values.items()]
        grid = labelled_grid(images, *settings.grid, header, [f"seed {s}" for s in seeds])
        grid.save(partial / "grid.png")
        return files, grid

    def _record(self, condition, settings, prompt, seeds, scores, summary, files, grid, folder,
                on_run_created) -> str:
        import pandas as pd

        spec = self.spec
        params = {**{f"factor.{k}": v for k, v in condition.values.items()},
                  "prompt": prompt, "negative_prompt": spec.prompt.negative, "mode": settings.mode,
                  "steps": settings.steps, "guidance": settings.guidance, "strength": settings.strength,
                  "seed": settings.seed, "size": f"{settings.width}x{settings.height}",
                  "scheduler": settings.scheduler, "model": spec.generation.model}
        name = f"c{condition.number:03d} " + " | ".join(str(v) for v in condition.values.values())
        run_id = self.tracker.condition_run(self.parent_run, spec.name, condition.number, name[:250], params)
        if on_run_created:
            on_run_created(run_id)
        metrics = {f"clip_{k}": v for k, v in summary.items()}
        metrics.update({f"clip_image_{k:02d}": s for k, s in enumerate(scores)})
        self.tracker.log(run_id, metrics=metrics, tags={"qeuopt.folder": str(folder.resolve())})
        self.tracker.log_images(run_id, files, grid, files[0].parent / "grid.png")
        table = pd.DataFrame({"image": [f.name for f in files], "seed": seeds, "clip_cosine": scores,
                              **{k: [v] * len(files) for k, v in condition.values.items()}})
        self.tracker.log_table(run_id, table, "images_table.json")
        return run_id
