"""Running one condition: generate its grid, save the PNGs, score them, record the run.

Files of a condition are written into a ``.partial`` folder that is renamed only when
the condition is complete, so an interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from qeuopt.config.spec import Condition, GenerationSettings, StudySpec
from qeuopt.generate.files import image_name, parse_image_name
from qeuopt.generate.grid import format_parameters, grid_captions
from qeuopt.run.timings import Timings, timed
from qeuopt.run.upload import chart_grid, log_overview, save_trial_note, upload_condition
from qeuopt.run.writer import (
    FilesJob,
    Writer,
    as_images,
    as_pixels,
    dump_pending,
    pending_folder,
    write_files,
)
from qeuopt.score.clip import summarize
from qeuopt.track.schema import (
    CLIP_IMAGE_PREFIX,
    FACTOR_PREFIX,
    FOLDER_TAG,
    RUN_ID_ATTR,
    image_metric,
)


class Generator(Protocol):
    model: str  # optional ``device``: "cpu" runs one lane (qeuopt.run.lanes.lanes_for)

    def generate(
        self, prompt: str, negative: str, settings: GenerationSettings, seeds: Sequence[int], init_image=None
    ) -> list: ...  # PIL images; optional ``generate_pixels``: the same as one uint8 array

    def sampler_label(self, scheduler: str) -> str: ...


class Scorer(Protocol):
    def score(self, images: Sequence, text: str): ...


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


def a1111_fields(
    settings: GenerationSettings, seed: int, generator, prompt: str = "", spec: StudySpec | None = None
) -> dict[str, Any]:
    """A1111's settings line for one image (see :mod:`qeuopt.generate.infotext`)."""
    from qeuopt.config.prompt_syntax import split_loras
    from qeuopt.generate.infotext import fields, lora_hash, qeuopt_version

    pair = getattr(generator, "a1111_sampler", None)
    sampler, schedule = pair(settings.scheduler) if pair else (generator.sampler_label(settings.scheduler), "Automatic")
    loras = spec.loras if spec is not None and spec.prompt.syntax == "a1111" else {}
    used = [name for name in split_loras(prompt)[1] if name in loras]
    hashes = {name: lora_hash(Path(spec.base_dir) / Path(loras[name]).expanduser()) for name in used}
    return fields(
        steps=settings.steps,
        sampler=sampler,
        schedule=schedule,
        guidance=settings.guidance,
        seed=seed,
        width=settings.width,
        height=settings.height,
        model=generator.model,
        model_hash=getattr(generator, "model_hash", None),
        strength=settings.strength if settings.mode == "img2img" else None,
        lora_hashes=hashes,
        version=qeuopt_version(),
    )


def scoring_text(spec: StudySpec, values, prompt: str) -> str:
    """The text CLIP compares with: ``scoring.text`` or the prompt, as a person reads it
    (weights, BREAK, prompt editing and LoRA tags removed under ``prompt.syntax = a1111``)."""
    from qeuopt.config.prompt_syntax import readable

    text = spec.scoring.text.format(**values) if spec.scoring.text else prompt
    return readable(text, spec.prompt.syntax)


class ConditionRunner:
    """Runs conditions of one study with a loaded generator, scorer and tracker.

    A lane (:mod:`qeuopt.run.lanes`) renders, scores and records each condition's run;
    its files and artifacts are written on a :class:`~qeuopt.run.writer.Writer`
    meanwhile (unless ``tracking.overlap_logging`` is off). Several lanes may call
    :meth:`run` at once: the generator and the scorer are each used by one at a time
    (one pipeline, one CLIP model), the rest runs side by side."""

    def __init__(
        self, spec: StudySpec, generator: Generator, scorer: Scorer, tracker, parent_run: str, init_image=None
    ):
        self.spec, self.generator, self.scorer, self.tracker = spec, generator, scorer, tracker
        self.parent_run, self.init_image = parent_run, init_image
        self.timings = Timings()
        self._writer = Writer() if spec.tracking.overlap_logging else None
        self._warm = False
        self._generating, self._scoring = threading.Lock(), threading.Lock()
        self._notes: dict[str, tuple] = {}  # run id -> (trial, note), saved by the condition's writer job

    def run(self, condition: Condition, on_run_created=None) -> ConditionResult:
        """Generate, score and record one condition; its files follow on the writer.

        Before this returns, the run holds params, metrics and the folder tag, and the
        pixels are dumped raw beside the folder-to-be, so a killed process loses nothing
        (resuming writes the files, :func:`finish_cut_off_upload`). ``on_run_created(run_id)``
        is called as soon as the MLflow run exists, so the Optuna trial points at it even
        if a later step fails."""
        self._raise_writer_errors()  # an earlier condition's files failed: stop before generating more
        start, stages = time.perf_counter(), {}
        spec, values = self.spec, condition.values
        settings = spec.settings_for(values)
        prompt, seeds = spec.prompt.render(values), seeds_for(settings)
        text = scoring_text(spec, values, prompt)
        # a compiled model compiles during its first grid: counted apart, not as generation
        compiles = getattr(self.generator, "compiles", spec.generation.compile)
        first = "warmup" if compiles and not self._warm else "generate"
        # a generator with ``generate_pixels`` hands over 8-bit pixels made on its device
        pixels_of = getattr(self.generator, "generate_pixels", None)
        asked = time.perf_counter()
        with self._generating:
            stages["turn"] = time.perf_counter() - asked  # the other lane was rendering
            with timed(stages, first):
                made = (pixels_of or self.generator.generate)(
                    prompt, spec.prompt.negative, settings, seeds, self.init_image
                )
            self._warm = True
        pixels = as_pixels(made)
        with self._scoring, timed(stages, "score"):  # a scorer taking the pixel array skips a PIL round trip
            batch = pixels if getattr(self.scorer, "takes_pixels", False) else as_images(made)
            scores = [float(s) for s in self.scorer.score(batch, text)]
        summary = summarize(scores)
        final = condition_folder(spec, condition.number)
        job = self._files_job(final, condition, settings, prompt, seeds, scores)
        with timed(stages, "log"):
            run_id = self._start_run(condition, settings, prompt, text, scores, summary, final, on_run_created)
        self._write(job, pixels, run_id, scores, condition.values, stages)
        stages["other"] = time.perf_counter() - start - sum(stages.values())
        self.timings.add(stages, len(seeds))
        return ConditionResult(condition, prompt, seeds, scores, summary, final, run_id)

    def link(self, trial):
        """An ``on_run_created`` for :meth:`run` that points ``trial`` at its MLflow run: user
        attributes ``mlflow_run_id`` and ``mlflow_run_url``, and, where optuna-dashboard is
        installed, a trial note whose Markdown link opens the run (user attributes show as
        plain text there). The note is written with the condition's files, by the
        writer (a process killed before leaves the attributes)."""

        def created(run_id: str) -> None:
            url = f"{self.spec.tracking.mlflow_ui.rstrip('/')}/#/experiments/{self.tracker.experiment_id}/runs/{run_id}"
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            trial.set_user_attr("mlflow_run_url", url)
            self._notes[run_id] = (trial, f"MLflow run: [{run_id}]({url})")

        return created

    def _write(self, job: FilesJob, pixels, run_id: str, scores, values, stages) -> None:
        """Files, then artifacts, then the run is FINISHED: inline, or on the writer, where
        the chart, the per-image table and the trial note are logged on an encoder thread
        while the PNGs are encoded (a study's last condition waits for all of it)."""

        note = self._notes.pop(run_id, None)

        def overview():
            chart = chart_grid(pixels, job.grid[1], [parse_image_name(name)[1] for name in job.names])
            log_overview(self.tracker, run_id, job.names, scores, values, chart)
            if note is not None:
                save_trial_note(*note)

        def work(encoders=None):
            begin = time.perf_counter()
            side = encoders.submit(overview) if encoders is not None else None
            try:
                folder = write_files(job, pixels, encoders)
            except BaseException:
                if side is not None:
                    wait([side])  # nothing of this condition keeps running after its failure
                raise
            side.result() if side is not None else overview()
            upload_condition(self.tracker, run_id, folder, scores, values, overview_logged=True)
            self.timings.add({"write": time.perf_counter() - begin}, 0, conditions=0)

        if self._writer is None:
            work()
            return
        try:
            dump_pending(job, pixels)
        except BaseException:
            shutil.rmtree(pending_folder(Path(job.folder)), ignore_errors=True)
            raise
        writer = self._writer  # bound now: close() drops the attribute while jobs still run
        stages["wait"] = writer.submit(lambda: work(writer.encoders))

    def _raise_writer_errors(self) -> None:
        if self._writer is not None:
            self._writer.raise_errors()

    def close(self) -> None:
        """Wait for every pending condition's files; raise the first failure."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _files_job(self, final: Path, condition, settings, prompt, seeds, scores) -> FilesJob:
        texts = [
            format_parameters(
                prompt, self.spec.prompt.negative, a1111_fields(settings, seed, self.generator, prompt, self.spec)
            )
            for seed in seeds
        ]
        header = [f"#{condition.number}"] + [f"{k} = {v}" for k, v in condition.values.items()]
        return FilesJob(
            str(final),
            [image_name(k, seed) for k, seed in enumerate(seeds)],
            texts,
            list(settings.grid),
            header,
            grid_captions(seeds, scores),
            self.spec.tracking.png_compression,
        )

    def _start_run(self, condition, settings, prompt, text, scores, summary, folder, on_run_created) -> str:
        """The run with its params, metrics and folder tag: one create and one batch."""
        spec = self.spec
        params = {
            **{FACTOR_PREFIX + k: v for k, v in condition.values.items()},
            "prompt": prompt,
            "negative_prompt": spec.prompt.negative,
            "mode": settings.mode,
            "steps": settings.steps,
            "guidance": settings.guidance,
            "strength": settings.strength,
            "seed": settings.seed,
            "size": f"{settings.width}x{settings.height}",
            "scheduler": settings.scheduler,
            "model": spec.generation.model,
            "prompt_syntax": spec.prompt.syntax,
            "scoring_text": text,
        }
        metrics = {f"clip_{k}": v for k, v in summary.items()}
        metrics.update({image_metric(CLIP_IMAGE_PREFIX, k): s for k, s in enumerate(scores)})
        metrics.update(numeric_params(params))  # MLflow sorts params as text: numbers go in as metrics too
        name = f"c{condition.number:03d} " + " | ".join(str(v) for v in condition.values.values())
        run_id = self.tracker.condition_run(
            self.parent_run,
            spec.name,
            condition.number,
            name[:250],
            params,
            metrics=metrics,
            tags={FOLDER_TAG: str(folder.resolve())},
        )
        if on_run_created:
            on_run_created(run_id)
        return run_id


def numeric_params(params) -> dict[str, float]:
    """The numeric params (not bools), to be logged as metrics of the same name."""
    return {
        k: float(v)
        for k, v in params.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }
