"""The diffusers backend: one pipeline loaded per study, one batched call per grid.

Image k of a grid gets its own ``torch.Generator`` seeded with ``seeds[k]``, so any image
can be reproduced alone from its seed (generators live on the CPU, which makes seeds
portable between machines and devices). img2img reuses the txt2img components, so
switching mode costs no second load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from qeuopt.exceptions import ModelLoadError, UnsafeCheckpointError
from qeuopt.generate.schedulers import DEFAULT, SCHEDULERS, a1111_sampler_name
from qeuopt.space import GenerationSettings
from qeuopt.testing import resolve_model

log = logging.getLogger(__name__)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


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


def load_text2image(model: str, *, device: str, dtype, allow_pickle: bool = False, base_dir: str = "."):
    """Load a hub id, a local diffusers folder or a single checkpoint file."""
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    ref = resolve_model(model)
    local = Path(base_dir) / Path(ref).expanduser()
    suffix = local.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UnsafeCheckpointError(f"`generation.model`: {model!r} is a pickle checkpoint; set allow_pickle to load it")
    try:
        if suffix in (".safetensors", *PICKLE_SUFFIXES):
            pipe = StableDiffusionPipeline.from_single_file(str(local), dtype=dtype)
        else:
            source = str(local) if local.is_dir() else ref
            # AutoPipeline picks SD 1.x/2.x or SDXL from the model's own index.
            pipe = AutoPipelineForText2Image.from_pretrained(
                source, dtype=dtype, use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError, EnvironmentError) as err:
        raise ModelLoadError(f"`generation.model`: could not load {model!r}: {err}") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


class DiffusionGenerator:
    """Renders grids for conditions, keeping one pipeline (and its schedulers) loaded."""

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "auto",
                 allow_pickle: bool = False, base_dir: str = "."):
        self.model = model
        self.device = pick_device(device)
        self.dtype_name = dtype
        self.allow_pickle = allow_pickle
        self.base_dir = base_dir
        self._pipes: dict[str, object] = {}
        self._schedulers: dict[str, object] = {}

    def pipeline(self, mode: str):
        if "txt2img" not in self._pipes:
            self._pipes["txt2img"] = load_text2image(
                self.model, device=self.device, dtype=pick_dtype(self.dtype_name, self.device),
                allow_pickle=self.allow_pickle, base_dir=self.base_dir)
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
