"""Tiny offline models for tests and the demo.

Their images are noise, but loading them runs exactly the code a user's real model runs:
``StableDiffusionPipeline.from_pretrained(folder)`` and ``SentenceTransformer(folder)``.
They are built once per recipe version into :func:`cache_dir` (fixed seed: byte-identical
files) and reused. Heavy libraries are imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from qeuopt.cache import cache_dir
from qeuopt.errors import InputError
from qeuopt.testing.tokenizer import make_tokenizer

TINY_SD = "qeuopt-tiny:sd"
TINY_CLIP = "qeuopt-tiny:clip"

# Bump when any recipe below changes: the version is part of the folder name, so a stale
# cache is never mistaken for the new recipe.
RECIPE_VERSION = "v1"

_PREFIX = "qeuopt-tiny:"
_KINDS = ("sd", "clip")
_STALE_TEMP_SECONDS = 3600  # a temp dir this old belongs to a build that was killed

# Stable Diffusion 1.5's scheduler/scheduler_config.json, so scheduler swaps behave as real.
SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "trained_betas": None,
}


# ---------------------------------------------------------------- public API


def is_tiny(ref: str) -> bool:
    """True for ``qeuopt-tiny:sd`` / ``qeuopt-tiny:clip``."""
    return isinstance(ref, str) and ref.startswith(_PREFIX) and ref[len(_PREFIX) :] in _KINDS


def resolve_model(ref: str) -> str:
    """Turn a tiny-model reference into its built folder; return anything else unchanged.

    An unknown ``qeuopt-tiny:`` kind raises rather than passing through, so a typo fails
    here with the allowed kinds instead of later as a confusing hub lookup.
    """
    if not (isinstance(ref, str) and ref.startswith(_PREFIX)):
        return ref
    return str(tiny_model_path(ref[len(_PREFIX) :]))


def tiny_model_path(kind: str, cache: Path | None = None) -> Path:
    """Build the tiny ``"sd"`` or ``"clip"`` model once and return its folder."""
    builders = {"sd": _save_tiny_sd, "clip": _save_tiny_clip}
    if kind not in builders:
        raise InputError(f"`kind` must be one of {list(builders)} (as in {TINY_SD!r}), got {kind!r}")
    root = Path(cache) if cache is not None else cache_dir()
    target = root / f"tiny-{kind}-{RECIPE_VERSION}"
    if not target.is_dir():
        _build_atomically(target, builders[kind])
    return target


# ---------------------------------------------------------------- atomic build


def _build_atomically(target: Path, save_into) -> None:
    """Build into a temp dir beside ``target`` and rename it into place.

    The rename is the commit: ``target`` never exists half-written, so a killed build
    leaves only a temp dir, and two concurrent builders cannot mix their files.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(target)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        save_into(temp)
        temp.chmod(0o755)  # mkdtemp makes it private; a shared cache must be readable
        os.rename(temp, target)
    except OSError:
        # Another builder renamed its (identical) folder first: use theirs.
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _remove_stale_temp_dirs(target: Path) -> None:
    """Delete temp dirs left by killed builds; recent ones may belong to a live builder."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        if now - leftover.stat().st_mtime > _STALE_TEMP_SECONDS:
            shutil.rmtree(leftover, ignore_errors=True)


# ---------------------------------------------------------------- tiny Stable Diffusion


def _text_config(vocab_size: int, bos_id: int, eos_id: int) -> dict:
    """Tiny CLIP text tower; eos id matters because CLIP pools the first eos position."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=16,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,  # latent side for a 64 px image, like SD 1.5's 64 for 512 px
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def _tiny_vae():
    from diffusers import AutoencoderKL

    # Four blocks give SD's 8x downscale, so latent sizes, the "divisible by 8" rule and
    # img2img encoding behave as with a real checkpoint; 8 channels keep it fast.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )


def _save_tiny_sd(folder: Path) -> None:
    """Assemble a StableDiffusionPipeline from tiny parts and save it as safetensors."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = make_tokenizer(folder / "tokenizer")
    text_config = CLIPTextConfig(**_text_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id))
    torch.manual_seed(0)  # one seed before all parts: their weights are fixed by order
    pipe = StableDiffusionPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(text_config),
        tokenizer=tokenizer,
        unet=_tiny_unet(),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


# ---------------------------------------------------------------- tiny CLIP scorer


def _save_tiny_clip(folder: Path) -> None:
    """Save a tiny CLIP in the layout of sentence-transformers' hub CLIP models.

    Those (``clip-ViT-L-14`` ...) keep the transformers model + processor in ``0_CLIPModel/``
    listed in ``modules.json`` as ``sentence_transformers.models.CLIPModel``, so
    ``SentenceTransformer(folder)`` takes the same (legacy-module) path as the real model.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    module_dir = folder / "0_CLIPModel"
    tokenizer = make_tokenizer(module_dir)
    text = _text_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(module_dir, safe_serialization=True)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(module_dir)
    modules = [{"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
