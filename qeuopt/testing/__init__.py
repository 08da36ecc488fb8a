"""Tiny offline models (``tiny``), fakes (``fake``), synthetic problems (``synthetic``) and
the demo sketch (``sketch``), for tests, benchmarks and the demo. Production code reaches
this package only through :mod:`qeuopt.generate.models`."""

from qeuopt.testing.tiny import (
    TINY_CLIP,
    TINY_SD,
    cache_dir,
    is_tiny,
    resolve_model,
    tiny_model_path,
)

__all__ = ["TINY_CLIP", "TINY_SD", "cache_dir", "is_tiny", "resolve_model", "tiny_model_path"]
