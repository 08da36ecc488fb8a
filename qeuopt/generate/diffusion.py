"""The diffusers backend: one pipeline loaded per study, one batched call per grid.

Image k of a grid gets its own ``torch.Generator`` seeded with ``seeds[k]``, so any image
can be reproduced alone from its seed (generators live on the CPU, which makes seeds
portable between machines and devices). img2img reuses the txt2img components, so
switching mode costs no second load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qeuopt.config.load import (
    PICKLE_SUFFIXES,  # one list: validation refuses what loading refuses
)
from qeuopt.config.schedulers import DEFAULT, SCHEDULERS, a1111_sampler_name
from qeuopt.config.spec import GenerationSettings
from qeuopt.errors import ModelLoadError, UnsafeCheckpointError
from qeuopt.generate.models import resolve_model


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str):
    """fp16 on accelerators (what SD 1.x/2.x weights are published in), fp32 on CPU."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    return torch.float32 if device == "cpu" else torch.float16


def load_text2image(settings: GenerationSettings, *, device: str, dtype, base_dir: str = "."):
    """Load a hub id, a local diffusers folder or a single checkpoint file."""
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    set_threads(settings, device)
    model, allow_pickle = settings.model, settings.allow_pickle
    ref = resolve_model(model)
    local = Path(base_dir) / Path(ref).expanduser()
    suffix = local.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UnsafeCheckpointError(f"`generation.model`: {model!r} is a pickle checkpoint; set allow_pickle to load it")
    try:
        if suffix in (".safetensors", *PICKLE_SUFFIXES):
            # a single file carries weights only; `model_config` (a diffusers folder or hub
            # id) supplies the component configs, which otherwise come from the hub
            extra = {"config": settings.model_config} if settings.model_config else {}
            pipe = StableDiffusionPipeline.from_single_file(str(local), dtype=dtype, **extra)
        else:
            source = str(local) if local.is_dir() else ref
            # AutoPipeline picks SD 1.x/2.x or SDXL from the model's own index.
            pipe = AutoPipelineForText2Image.from_pretrained(
                source, dtype=dtype, use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError, EnvironmentError) as err:
        raise ModelLoadError(f"`generation.model`: could not load {model!r}: {err}") from err
    pipe.set_progress_bar_config(disable=True)
    return apply_speed_settings(place(pipe, settings, device), settings)


def cpu_threads(settings: GenerationSettings, device: str) -> int | None:
    """torch's CPU thread count: ``generation.threads`` when given; else, for CPU runs,
    the cores this process may use minus one, left to the threads that encode PNGs and
    log while the next grid renders (torch's default takes every core, and its threads
    spin-wait: on a busy machine that made generation 20x slower). An ``OMP_NUM_THREADS``
    set by the user wins over the automatic choice; GPU runs keep torch's default."""
    import os

    if settings.threads:
        return settings.threads
    if device != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def set_threads(settings: GenerationSettings, device: str) -> None:
    import torch

    threads = cpu_threads(settings, device)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def place(pipe, settings: GenerationSettings, device: str):
    """The pipeline on ``device``; with ``generation.offload`` its weights wait in CPU memory
    instead: "model" moves each whole model (text encoder, UNet, VAE) to the GPU while it
    runs (little slower, about a third of the VRAM), "sequential" moves layer by layer
    (far slower, the least VRAM). diffusers places offloaded pipelines itself."""
    if settings.offload == "none":
        return pipe.to(device)
    if not device.startswith("cuda"):
        raise ModelLoadError(f"`generation.offload`: {settings.offload!r} needs a CUDA GPU; the device is {device!r}")
    if settings.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    return pipe


def apply_speed_settings(pipe, settings: GenerationSettings):
    """Opt-in GPU settings. SDPA attention is diffusers' default on torch 2, so no switch."""
    import torch

    if settings.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if settings.attention_slicing:  # small cards: attention in slices, less peak memory
        pipe.enable_attention_slicing()
    if settings.vae_slicing:  # large grids: decode one image at a time
        pipe.vae.enable_slicing()
    if settings.vae_tiling:  # large images: decode in overlapping tiles
        pipe.vae.enable_tiling()
    if settings.compile:  # pays a compile on the first grid, then faster UNet steps
        pipe.unet = torch.compile(pipe.unet)
    return pipe


class DiffusionGenerator:
    """Renders grids for conditions, keeping one pipeline (and its schedulers) loaded."""

    def __init__(self, settings: GenerationSettings, base_dir: str = "."):
        self.settings = settings
        self.model = settings.model
        self.device = pick_device(settings.device)
        self.base_dir = base_dir
        self._pipes: dict[str, object] = {}
        self._schedulers: dict[str, object] = {}

    def pipeline(self, mode: str):
        if "txt2img" not in self._pipes:
            self._pipes["txt2img"] = load_text2image(
                self.settings, device=self.device, dtype=pick_dtype(self.settings.dtype, self.device),
                base_dir=self.base_dir)
        if mode == "img2img" and mode not in self._pipes:
            from diffusers import AutoPipelineForImage2Image

            self._pipes[mode] = AutoPipelineForImage2Image.from_pipe(self._pipes["txt2img"])
            self._pipes[mode].set_progress_bar_config(disable=True)  # not carried over by from_pipe
        return self._pipes[mode]

    def scheduler(self, name: str, pipe):
        if name == DEFAULT:
            return self._schedulers.setdefault(DEFAULT, pipe.scheduler)
        if name not in self._schedulers:
            import diffusers

            class_name, extra, _ = SCHEDULERS[name]
            base = self._schedulers.setdefault(DEFAULT, pipe.scheduler)
            self._schedulers[name] = getattr(diffusers, class_name).from_config(base.config, **extra)
        return self._schedulers[name]

    def sampler_label(self, name: str) -> str:
        default = self._schedulers.get(DEFAULT)
        return a1111_sampler_name(name, type(default).__name__ if default is not None else "")

    def generate(self, prompt: str, negative: str, settings: GenerationSettings,
                 seeds: Sequence[int], init_image=None) -> list:
        """One pipeline call for the whole grid; returns PIL images in seed order."""
        import torch

        pipe = self.pipeline(settings.mode)
        pipe.scheduler = self.scheduler(settings.scheduler, pipe)
        kwargs = dict(
            prompt=prompt, negative_prompt=negative or None, num_images_per_prompt=len(seeds),
            generator=[torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
            guidance_scale=float(settings.guidance), num_inference_steps=int(settings.steps),
        )
        if settings.mode == "img2img":
            kwargs.update(image=init_image.resize((settings.width, settings.height)),
                          strength=float(settings.strength))
        else:
            kwargs.update(width=settings.width, height=settings.height)
        with torch.inference_mode():
            return list(pipe(**kwargs).images)
