"""Running one condition: generate its grid, save the PNGs, score them, record the run.

Files of a condition are written into a ``.partial`` folder that is renamed only when
the condition is complete, so an interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from qeuopt.config.spec import Condition, GenerationSettings, StudySpec
from qeuopt.generate.grid import format_parameters, labelled_grid, save_png
from qeuopt.score.clip import summarize

FOLDER_TAG = "qeuopt.folder"


class Generator(Protocol):
    model: str

    def generate(self, prompt: str, negative: str, settings: GenerationSettings,
                 seeds: Sequence[int], init_image=None) -> list: ...

    def sampler_label(self, scheduler: str) -> str: ...


class Scorer(Protocol):
    def score(self, images: Sequence, text: str): ...


@dataclass
class Timings:
    """Seconds spent per stage, summed over the conditions run (thread-safe).

    With overlapped logging, uploads run while the next condition generates, so the
    stage sums can exceed the wall time."""

    generate: float = 0.0
    score: float = 0.0
    log: float = 0.0
    other: float = 0.0
    conditions: int = 0
    images: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()

    def timed(self) -> float:
        return self.generate + self.score + self.log

    def add(self, stages: dict[str, float], images: int, conditions: int = 1) -> None:
        with self._lock:
            for name, seconds in stages.items():
                setattr(self, name, getattr(self, name) + seconds)
            self.conditions += conditions
            self.images += images


@contextmanager
def timed(stages: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start


@dataclass
class ConditionResult:
    condition: Condition
    prompt: str
    seeds: list[int]
    scores: list[float]
    summary: dict[str, float]
    folder: Path
    run_id: str


def condition_folder(spec: StudySpec, number: int) -> Path:
    """Where the files of condition (trial) ``number`` live: ``outputs/<study>/cNNN``."""
    return Path(spec.tracking.output_dir) / spec.name / f"c{number:03d}"


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
        overlap = spec.tracking.overlap_logging
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="qeuopt-upload") if overlap else None
        self._uploads: list = []

    def run(self, condition: Condition, on_run_created=None) -> ConditionResult:
        """Generate, save, score and record one condition.

        The condition's files are on disk and its run holds params and metrics before this
        returns; artifact uploads overlap the next condition. ``on_run_created(run_id)``
        is called as soon as the MLflow run exists, so the Optuna trial points at it
        even if a later step fails.
        """
        self._raise_writer_errors()  # an earlier upload failed: stop before generating more
        start, stages = time.perf_counter(), {}
        spec, values = self.spec, condition.values
        settings = spec.settings_for(values)
        prompt, seeds = spec.prompt.render(values), seeds_for(settings)
        text = spec.scoring.text.format(**values) if spec.scoring.text else prompt
        with timed(stages, "generate"):
            images = self.generator.generate(prompt, spec.prompt.negative, settings, seeds, self.init_image)
        with timed(stages, "score"):
            scores = [float(s) for s in self.scorer.score(images, text)]
        summary = summarize(scores)
        final = condition_folder(spec, condition.number)
        partial = final.with_name(final.name + ".partial")
        try:
            grid = self._save(partial, condition, settings, prompt, seeds, images)
            shutil.rmtree(final, ignore_errors=True)  # left by an earlier attempt of this number
            partial.rename(final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        with timed(stages, "log"):
            run_id = self._start_run(condition, settings, prompt, scores, summary, final, on_run_created)
        self._upload_later(run_id, final, scores, condition.values, grid)
        stages["other"] = time.perf_counter() - start - sum(stages.values())
        self.timings.add(stages, len(images))
        return ConditionResult(condition, prompt, seeds, scores, summary, final, run_id)

    def _upload_later(self, run_id, folder, scores, values, grid) -> None:
        """Artifacts go up on the writer thread while the next condition generates. The
        files are already on disk and the run stays RUNNING until they are uploaded, so
        an interrupted upload is redone on resume (see :func:`upload_condition`)."""
        def upload():
            start = time.perf_counter()
            upload_condition(self.tracker, run_id, folder, scores, values, grid)
            self.timings.add({"log": time.perf_counter() - start}, 0, conditions=0)

        if self._writer is None:
            upload()
            return
        self._uploads.append(self._writer.submit(upload))

    def _raise_writer_errors(self) -> None:
        for future in [f for f in self._uploads if f.done()]:
            self._uploads.remove(future)
            future.result()  # re-raises an upload's exception here, in the main thread

    def close(self) -> None:
        """Wait for every pending upload; raise the first failure."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._raise_writer_errors()

    def _save(self, partial: Path, condition, settings, prompt, seeds, images):
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        sampler = self.generator.sampler_label(settings.scheduler)
        for k, (image, seed) in enumerate(zip(images, seeds)):
            text = format_parameters(prompt, self.spec.prompt.negative,
                                     a1111_fields(settings, seed, sampler, self.generator.model))
            save_png(image, partial / f"{k:02d}_seed{seed}.png", text)
        header = [f"#{condition.number}"] + [f"{k} = {v}" for k, v in condition.values.items()]
        grid = labelled_grid(images, *settings.grid, header, [f"seed {s}" for s in seeds])
        grid.save(partial / "grid.png")
        return grid

    def _start_run(self, condition, settings, prompt, scores, summary, folder, on_run_created) -> str:
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
        self.tracker.log(run_id, metrics=metrics, tags={FOLDER_TAG: str(folder.resolve())})
        return run_id


def condition_images(folder: Path) -> list[Path]:
    """The PNGs of a condition folder in grid order (``NN_seedS.png``; 100+ cells give NNN)."""
    return sorted(folder.glob("[0-9]*_seed*.png"), key=lambda path: int(path.name.split("_")[0]))


def upload_condition(tracker, run_id: str, folder: Path, scores, values, grid=None) -> None:
    """Images, grid and per-image table of a condition, read from its folder; then the run
    is marked FINISHED. Safe to repeat: the same artifact paths are overwritten."""
    import pandas as pd
    from PIL import Image

    files = condition_images(folder)
    if grid is None:
        grid = Image.open(folder / "grid.png")
    tracker.log_images(run_id, files, grid, folder / "grid.png")
    seeds = [int(f.stem.split("_seed")[1]) for f in files]
    table = pd.DataFrame({"image": [f.name for f in files], "seed": seeds, "clip_cosine": list(scores),
                          **{k: [v] * len(files) for k, v in values.items()}})
    tracker.log_table(run_id, table, "images_table.json")
    tracker.finish(run_id)


def finish_cut_off_upload(tracker, trial) -> bool:
    """A trial whose files and metrics are safe but whose uploads were cut off (its run is
    still RUNNING) gets them redone from its folder; a finished run is left alone. False
    when the folder is not on this machine (written by a worker elsewhere)."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    run = tracker.client.get_run(run_id) if run_id else None
    if run is None or run.info.status != "RUNNING":
        return True
    folder = Path(run.data.tags[FOLDER_TAG])
    if not (folder / "grid.png").is_file():
        return False
    upload_condition(tracker, run_id, folder, trial.user_attrs["clip_scores"], trial.params)
    return True
