"""Model references: what a study's ``model`` or ``clip_model`` names, turned into what
``from_pretrained`` / ``SentenceTransformer`` load.

A hub id or a local path passes through unchanged. ``qeuopt-tiny:sd`` and
``qeuopt-tiny:clip`` name the tiny offline models, built on first use by
:mod:`qeuopt.testing.tiny`; this is the only door from production code into
:mod:`qeuopt.testing`, and it opens only for those names.
"""

from __future__ import annotations

TINY_PREFIX = "qeuopt-tiny:"


def resolve_model(ref: str) -> str:
    """The folder or hub id to load for a model reference."""
    if not (isinstance(ref, str) and ref.startswith(TINY_PREFIX)):
        return ref
    from qeuopt.testing.tiny import resolve_model as resolve_tiny

    return resolve_tiny(ref)
