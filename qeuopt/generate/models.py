"""Model references: what a study's ``model`` or ``clip_model`` names, turned into what
``from_pretrained`` / ``SentenceTransformer`` load.

A hub id or a local path passes through unchanged. ``qeuopt-tiny:sd`` and
``qeuopt-tiny:clip`` name the tiny offline models, built on first use by
:mod:`qeuopt.testing.tiny`; this is the only door from production code into
:mod:`qeuopt.testing`, and it opens only for those names.
"""

from __future__ import annotations

from qeuopt.errors import causes

TINY_PREFIX = "qeuopt-tiny:"


def resolve_model(ref: str) -> str:
    """The folder or hub id to load for a model reference."""
    if not (isinstance(ref, str) and ref.startswith(TINY_PREFIX)):
        return ref
    from qeuopt.testing.tiny import resolve_model as resolve_tiny

    return resolve_tiny(ref)


def load_failure(field: str, model: str, source: str, error: BaseException) -> str:
    """One line saying why ``model`` did not load and what to do about it.

    ``source`` is what was handed to the loader (a resolved folder or the hub id). A
    missing local file, an offline hub, an id the Hub does not have, a gated model and
    an unreachable Hub each get their own fix; anything else keeps the library's words."""
    from pathlib import Path

    looks_local = source.startswith((".", "/", "~")) or Path(source).suffix in (".safetensors", ".ckpt", ".pt", ".bin")
    if looks_local and not Path(source).expanduser().exists():
        return (
            f"`{field}`: {model!r} is not a file or folder here ({Path(source).expanduser().resolve()}); "
            f"give a diffusers folder, a .safetensors file, or a Hugging Face Hub id"
        )
    if Path(source).exists():
        return f"`{field}`: could not load {model!r} from {source}: {_first_line(error)}"
    return f"`{field}`: could not load {model!r} from the Hugging Face Hub: {_hub_reason(source, error)}"


def _hub_reason(repo_id: str, error: BaseException) -> str:
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    chain = causes(error)
    cache = constants.HF_HUB_CACHE
    if any(isinstance(e, GatedRepoError) for e in chain):
        return (
            f"the model is gated; accept its licence on huggingface.co/{repo_id} and log in "
            f"(`hf auth login`), then run again"
        )
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return (
            "the Hub has no such model (removed, renamed or private); check the id (Stable Diffusion 1.5 "
            "is stable-diffusion-v1-5/stable-diffusion-v1-5)"
        )
    if constants.HF_HUB_OFFLINE:
        return (
            f"the hub is offline (HF_HUB_OFFLINE=1) and the model is not in the cache ({cache}); "
            f"download it once with internet access (`hf download {repo_id}`), or point the study at a "
            f"local diffusers folder or .safetensors file"
        )
    if any(isinstance(e, (ConnectionError, TimeoutError)) or "connect" in type(e).__name__.lower() for e in chain):
        return (
            f"the Hub could not be reached and the model is not in the cache ({cache}); check the "
            f"connection, or download it elsewhere (`hf download {repo_id}`) and copy the cache"
        )
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
