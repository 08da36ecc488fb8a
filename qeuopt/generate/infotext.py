"""The settings line of A1111's ``parameters`` text: every field A1111 1.9+ reads back.

Field order and names are A1111's: Steps, Sampler, Schedule type, CFG scale, Seed, Size,
Model hash, Model, Denoising strength, RNG, Lora hashes, Version. ``RNG: CPU`` because
qeuopt draws its noise on the CPU (A1111 assumes GPU noise when the field is absent).

Hashes are A1111's: ``Model hash`` is the first 10 hex digits of the SHA-256 of the
checkpoint file; a diffusers folder or hub id has no single file, so the field is left out
(A1111 then matches the checkpoint by ``Model`` name only). ``Lora hashes`` are the first
12 hex digits of the SHA-256 of a .safetensors file's tensor data (the bytes after its JSON
header, A1111's "addnet" hash), written as ``"name: hash, name: hash"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


@lru_cache(maxsize=64)
def _sha256(path: str, mtime: float, size: int, skip_header: bool) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if skip_header:
            handle.seek(8 + int.from_bytes(handle.read(8), "little"))
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path, skip_safetensors_header: bool = False) -> str:
    """SHA-256 of a file (cached per path, size and time), optionally of its tensor data only."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_mtime, stat.st_size, skip_safetensors_header)


def model_hash(path: str | Path | None) -> str | None:
    """A1111's short model hash of a checkpoint file; None for folders and hub ids."""
    if not path or not Path(path).is_file():
        return None
    return file_sha256(path)[:10]


def lora_hash(path: str | Path) -> str:
    return file_sha256(path, skip_safetensors_header=Path(path).suffix == ".safetensors")[:12]


def model_label(model: str) -> str:
    """The ``Model`` value: the file or folder name without suffix, as A1111 shows it, with
    ``,`` and ``:`` replaced (readers that do not unquote A1111's JSON quoting lose the field)."""
    stem = Path(model).stem if model else ""
    return re.sub(r"[,:\"\n]", "_", stem or model or "unknown")


def fields(
    *,
    steps: int,
    sampler: str,
    schedule: str,
    guidance: float,
    seed: int,
    width: int,
    height: int,
    model: str,
    model_hash: str | None = None,
    strength: float | None = None,
    lora_hashes: Mapping[str, str] | None = None,
    version: str = "",
) -> dict[str, Any]:
    """The settings of one image, in A1111's order and names."""
    result: dict[str, Any] = {
        "Steps": steps,
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": guidance,
        "Seed": seed,
        "Size": f"{width}x{height}",
    }
    if model_hash:
        result["Model hash"] = model_hash
    result["Model"] = model_label(model)
    if strength is not None:
        result["Denoising strength"] = strength
    result["RNG"] = "CPU"
    if lora_hashes:
        result["Lora hashes"] = ", ".join(f"{name}: {digest}" for name, digest in lora_hashes.items())
    if version:
        result["Version"] = version
    return result


@lru_cache(maxsize=1)  # read from the installed metadata once: ~8 ms per look-up, six per grid
def qeuopt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"qeuopt {version('qeuopt')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "qeuopt"
