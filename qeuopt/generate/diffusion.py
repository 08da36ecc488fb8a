"""The diffusers backend: one pipeline loaded per study, one batched call per grid.

Image k of a grid gets its own ``torch.Generator`` seeded with ``seeds[k]``, so any image
can be reproduced alone from its seed (generators live on the CPU, which makes seeds
portable between machines and devices). img2img reuses the txt2img components, so
switching mode costs no second load.

Prompts are read in the study's ``prompt.syntax`` (A1111's language by default, see
:mod:`qeuopt.generate.conditioning`); LoRA files named in ``[loras]`` are loaded once, as
peft adapters, and each grid sets the adapter weights its ``<lora:name:weight>`` tags ask for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from qeuopt.config.load import (
    PICKLE_SUFFIXES,  # one list: validation refuses what loading refuses
)
from qeuopt.config.schedulers import DEFAULT, SCHEDULERS, a1111_sampler
from qeuopt.config.spec import GenerationSettings
from qeuopt.errors import ModelLoadError, UnsafeCheckpointError
from qeuopt.generate.models import load_failure, resolve_model
from qeuopt.generate.noise import third_party_noise_off
from qeuopt.heap import setup_done


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
    third_party_noise_off()
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    set_threads(settings, device)
    model, allow_pickle = settings.model, settings.allow_pickle
    ref = resolve_model(model)
    local = Path(base_dir) / Path(ref).expanduser()
    suffix = local.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UnsafeCheckpointError(
            f"`generation.model`: {model!r} is a pickle checkpoint; set allow_pickle to load it"
        )
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
                source, dtype=dtype, use_safetensors=None if allow_pickle else True
            )
    except (OSError, ValueError) as err:
        source = str(local) if local.exists() or suffix or ref.startswith((".", "/", "~")) else ref
        raise ModelLoadError(load_failure("generation.model", model, source, err)) from err
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

    def __init__(
        self,
        settings: GenerationSettings,
        base_dir: str = ".",
        syntax: str = "a1111",
        loras: Mapping[str, str] | None = None,
    ):
        self.settings = settings
        self.model = settings.model
        self.device = pick_device(settings.device)
        self.base_dir = base_dir
        self.syntax = syntax
        self.loras = dict(loras or {})  # adapter name -> .safetensors path (relative to base_dir)
        self.pipeline_loads = 0
        self._pipes: dict[str, object] = {}
        self._schedulers: dict[str, object] = {}
        self._encoder = None
        self._adapters = None  # the LoRA weights now set, to skip setting them again

    def pipeline(self, mode: str):
        if "txt2img" not in self._pipes:
            self._pipes["txt2img"] = load_text2image(
                self.settings,
                device=self.device,
                dtype=pick_dtype(self.settings.dtype, self.device),
                base_dir=self.base_dir,
            )
            self.pipeline_loads += 1
            load_loras(self._pipes["txt2img"], self.loras, self.base_dir)
            setup_done()  # the bulk of a process's long-lived objects now exists
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

            class_name, extra = SCHEDULERS[name][:2]
            base = self._schedulers.setdefault(DEFAULT, pipe.scheduler)
            self._schedulers[name] = getattr(diffusers, class_name).from_config(base.config, **extra)
        return self._schedulers[name]

    def a1111_sampler(self, name: str) -> tuple[str, str]:
        """(sampler, schedule type) as A1111 1.9+ names what ``name`` runs."""
        default = self._schedulers.get(DEFAULT)
        if default is None:
            return a1111_sampler(name)
        return a1111_sampler(name, type(default).__name__, dict(default.config))

    def sampler_label(self, name: str) -> str:
        return self.a1111_sampler(name)[0]

    @property
    def model_hash(self) -> str | None:
        """A1111's short hash of a single-file checkpoint; None for folders and hub ids."""
        from qeuopt.generate.infotext import model_hash

        return model_hash(Path(self.base_dir) / Path(resolve_model(self.model)).expanduser())

    def encoder(self):
        from qeuopt.generate.conditioning import PromptEncoder

        if self._encoder is None:
            self._encoder = PromptEncoder(self.pipeline("txt2img"), self.syntax)
        return self._encoder

    def set_loras(self, prompt: str) -> None:
        """Adapter weights from the prompt's LoRA tags; the text embeddings are recomputed
        when they change (a LoRA may change the text encoder too)."""
        from qeuopt.config.prompt_syntax import split_loras

        weights = split_loras(prompt)[1] if self.syntax == "a1111" else {}
        if not self.loras or weights == self._adapters:
            return
        apply_loras(self.pipeline("txt2img"), weights)
        self._adapters = weights
        if self._encoder is not None:
            self._encoder.clear()

    def generate(
        self, prompt: str, negative: str, settings: GenerationSettings, seeds: Sequence[int], init_image=None
    ) -> list:
        """One pipeline call for the whole grid; returns PIL images in seed order."""
        from PIL import Image

        return [Image.fromarray(p) for p in self.generate_pixels(prompt, negative, settings, seeds, init_image)]

    def generate_pixels(
        self, prompt: str, negative: str, settings: GenerationSettings, seeds: Sequence[int], init_image=None
    ):
        """The grid as one uint8 array ``(n, height, width, 3)``, in seed order: diffusers'
        8-bit conversion (numpy on the CPU, ~11 ms per 512x512 grid) done on the pipeline's
        device instead, the same pixels bit for bit; only the 8-bit pixels are copied back."""
        import torch

        from qeuopt.config.checks import require_valid_settings

        require_valid_settings(settings)  # no inf, NaN or out-of-range number reaches the pipeline

        pipe = self.pipeline(settings.mode)
        pipe.scheduler = self.scheduler(settings.scheduler, pipe)
        self.set_loras(prompt)
        conditioning = self.encoder().conditioning(prompt, negative, int(settings.steps), len(seeds))
        kwargs = dict(
            **conditioning.kwargs,
            num_images_per_prompt=len(seeds),
            generator=[torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
            guidance_scale=float(settings.guidance),
            num_inference_steps=int(settings.steps),
        )
        if conditioning.callback is not None:
            kwargs.update(
                callback_on_step_end=conditioning.callback,
                callback_on_step_end_tensor_inputs=conditioning.callback.tensor_inputs,
            )
        if settings.mode == "img2img":
            kwargs.update(image=init_image.resize((settings.width, settings.height)), strength=float(settings.strength))
        else:
            kwargs.update(width=settings.width, height=settings.height)
        with torch.inference_mode():
            decoded = pipe(**kwargs, output_type="pt").images  # (n, 3, h, w) in [0, 1], on the device
            return to_pixels(decoded)


def to_pixels(decoded):
    """Decoded images in [0, 1], ``(n, 3, h, w)`` on any device, as diffusers' PIL
    conversion makes them (``numpy_to_pil``): float32 x 255, rounded, 8 bits; NHWC numpy."""
    import torch

    pixels = (decoded.float() * 255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def load_loras(pipe, loras: Mapping[str, str], base_dir: str = ".") -> None:
    """Every LoRA of the study as a peft adapter named as in ``[loras]``, all off at first."""
    import warnings

    if not loras:
        return
    for name, path in loras.items():
        try:
            with warnings.catch_warnings():  # peft warns that a model gets several adapters: it is meant to
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                pipe.load_lora_weights(str(Path(base_dir) / Path(path).expanduser()), adapter_name=name)
        except (OSError, ValueError, KeyError) as err:
            raise ModelLoadError(f"`loras.{name}`: could not load {path!r} into {type(pipe).__name__}: {err}") from err
    pipe.disable_lora()


def apply_loras(pipe, weights: Mapping[str, float]) -> None:
    """Switch adapters without reloading: the named ones at their weights, the rest off."""
    if not weights:
        pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters(list(weights), adapter_weights=[float(w) for w in weights.values()])
