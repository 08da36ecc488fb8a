"""Where qeuopt keeps what it builds once and reuses (tiny models, a migrated MLflow
database template): ``$QEUOPT_CACHE`` if set, else ``~/.cache/qeuopt``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    override = os.environ.get("QEUOPT_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "qeuopt"
