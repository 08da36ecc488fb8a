"""Checks of what a study will use on this machine, made before anything is created.

- ``tracking.mlflow_uri`` and ``tracking.optuna_storage`` parse as SQLAlchemy parses them,
  their database driver imports, and a SQLite file's folder exists and is writable (an
  existing file is writable too). An ``http(s)`` MLflow server is only parsed: a network
  check here would make ``qeuopt validate`` slow or flaky, and the first request names
  the server if it is down.
- ``output_dir``, ``artifact_dir`` and ``ratings_db`` are (or can be created as) writable
  folders / files: a path that runs into a file is refused.
- Models from the Hugging Face hub must be in the local cache when ``HF_HUB_OFFLINE`` is
  set (looked up without network); the tiny ``qeuopt-tiny:*`` models always resolve.

:func:`environment_problems` returns the problems; ``Study.run`` and the CLI raise them
as one ``StudyError`` together with the study's own problems.
"""

from __future__ import annotations

import os
from pathlib import Path

from qeuopt.config.checks import sqlite_file, sqlite_problem
from qeuopt.errors import StudyError

MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https")
OPTUNA_SCHEMES = ("sqlite", "postgresql", "mysql")
RATINGS_SCHEMES = ("sqlite", "postgresql")
DRIVER_HINTS = {
    "postgresql": "pip install 'psycopg[binary]'",
    "mysql": "pip install pymysql",
    "mssql": "pip install pyodbc",
}


def environment_problems(spec, generation_model: bool = True, clip_model: bool = True) -> list[str]:
    """What would fail on this machine; the models are checked unless a caller brings its own."""
    tracking = spec.tracking
    problems = _uri_problems("tracking.mlflow_uri", tracking.mlflow_uri, MLFLOW_SCHEMES)
    problems += _uri_problems("tracking.optuna_storage", tracking.optuna_storage, OPTUNA_SCHEMES)
    problems += _folder_problems("tracking.output_dir", Path(tracking.output_dir))
    problems += _folder_problems("tracking.artifact_dir", Path(tracking.artifact_dir))
    if "://" in tracking.ratings_store:
        problems += _uri_problems("tracking.ratings_db", tracking.ratings_store, RATINGS_SCHEMES)
    else:
        problems += _file_problems("tracking.ratings_db", Path(tracking.ratings_store))
    if generation_model:
        problems += _hub_problems("generation.model", spec.generation.model, spec.base_dir, "model_index.json")
    if clip_model:
        problems += _clip_problems(spec.scoring.clip_model, spec.base_dir)
    return problems


def require_environment(spec, generation_model: bool = True, clip_model: bool = True) -> None:
    problems = environment_problems(spec, generation_model, clip_model)
    if problems:
        raise StudyError(problems, spec.name)


def _uri_problems(field: str, uri: str, schemes: tuple[str, ...]) -> list[str]:
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in schemes:
        return [f"`{field}`: a URI with scheme {', '.join(schemes)} is allowed; given {uri!r}"]
    if scheme in ("http", "https"):
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(uri)
            ok = bool(parts.hostname) and (parts.port or 0) >= 0  # .port raises on a bad port
        except ValueError:
            ok = False
        return [] if ok else [f"`{field}`: {uri!r} does not parse as http(s)://host[:port]/"]
    return _database_problems(field, uri, scheme)


def _database_problems(field: str, uri: str, scheme: str) -> list[str]:
    """Parsed and opened the way MLflow and Optuna will: through SQLAlchemy."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
        url.get_dialect().import_dbapi()
    except (ArgumentError, ValueError) as err:
        return [f"`{field}`: not a database URI ({err}); given {uri!r}"]
    except (NoSuchModuleError, ImportError) as err:
        hint = DRIVER_HINTS.get(scheme, "install its driver")
        return [f"`{field}`: the database driver for {uri.split(':', 1)[0]!r} is not installed ({err}); {hint}"]
    if scheme != "sqlite":
        return []
    path = sqlite_file(uri)
    if not path or path == ":memory:":
        return [sqlite_problem(field, uri)]
    return _file_problems(field, Path(path), create_folder=False)


def _writable_folder(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _folder_problems(field: str, path: Path) -> list[str]:
    """The folder exists and is writable, or its nearest existing parent folder is."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: creating through it would fail
            return [f"`{field}`: {str(existing)!r} is a broken link"]
        existing = existing.parent
    if not existing.is_dir():
        return [f"`{field}`: {str(path)!r} cannot be a folder: {str(existing)!r} is a file"]
    if not _writable_folder(existing):
        return [f"`{field}`: {str(existing)!r} is not writable (needed for {str(path)!r})"]
    return []


def _file_problems(field: str, path: Path, create_folder: bool = True) -> list[str]:
    """A database file: writable if it exists, else creatable (SQLite also writes its journal
    beside it, so the folder must be writable either way)."""
    if path.is_dir():
        return [f"`{field}`: {str(path)!r} is a folder; a database file is needed"]
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return [f"`{field}`: {str(path)!r} is not writable"]
    folder = path.parent
    if not create_folder and not folder.is_dir():
        return [f"`{field}`: the folder {str(folder)!r} of the database does not exist; create it first"]
    return _folder_problems(field, folder)


def _hub_problems(field: str, model: str, base_dir: str, marker: str, hub_id: str | None = None) -> list[str]:
    """A hub id, when offline, must be in the cache (looked up without network)."""
    if model.startswith("qeuopt-tiny:") or (Path(base_dir) / Path(model).expanduser()).exists():
        return []
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        return []  # online: the hub answers at load time
    for candidate in ([hub_id] if hub_id else []) + [model]:
        try:
            found = try_to_load_from_cache(candidate, marker)
        except ValueError:  # not a valid repo id (try_to_load_from_cache validates it)
            continue
        if isinstance(found, str):
            return []
    return [
        f"`{field}`: {model!r} is neither a local path nor in the Hugging Face cache, and the hub is "
        "offline (HF_HUB_OFFLINE is set); download it once online, or give a local folder"
    ]


def _clip_problems(model: str, base_dir: str) -> list[str]:
    """sentence-transformers reads a bare name such as ``clip-ViT-L-14`` as
    ``sentence-transformers/clip-ViT-L-14``."""
    hub_id = f"sentence-transformers/{model}" if "/" not in model else None
    return _hub_problems("scoring.clip_model", model, base_dir, "modules.json", hub_id)
