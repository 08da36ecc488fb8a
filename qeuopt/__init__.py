"""qeuopt: designed experiments for Stable Diffusion prompts and parameters.

    study file (TOML) ──▶ Space of Factors ──▶ Design (orthogonal array | full | Optuna)
          │                                          │ one Optuna trial per Condition
          ▼                                          ▼
    validation (before any model loads)     Generator (diffusers, one batched call per grid)
                                                     │ PNGs with A1111 `parameters`, labelled grid
                                                     ▼
                                            Scorer (CLIP cosine; human ratings)
                                                     │
                                                     ▼
                                            Tracker (MLflow: parent run per study,
                                                     child run per condition)
                                                     │
                                                     ▼
                                  Models (Taguchi effects, T-method, pair factorization)
                                                     │
                                                     ▼
                                  Recommender ──▶ prompt sets (CSV, JSON, A1111, study TOML)

Importing this package loads no torch, diffusers, transformers or mlflow: the names
below resolve on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from qeuopt.config.spec import Condition, Factor, Space
from qeuopt.errors import InputError, QeuoptError, StudyError

try:
    __version__ = version("qeuopt")  # one source: pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

_LAZY = {
    "Study": "qeuopt.run.study",
    "RunSummary": "qeuopt.run.study",
    "load_study_file": "qeuopt.config.load",
    "optimize": "qeuopt.run.rounds",
    "OptimizeResult": "qeuopt.run.rounds",
    "rank": "qeuopt.recommend.rank",
    "SettingModel": "qeuopt.model.setting",
    "analyze_study": "qeuopt.analysis.study",
    "export_settings": "qeuopt.recommend.export",
}

__all__ = [
    "Condition",
    "Factor",
    "InputError",
    "OptimizeResult",
    "QeuoptError",
    "RunSummary",
    "SettingModel",
    "Space",
    "Study",
    "StudyError",
    "__version__",
    "analyze_study",
    "export_settings",
    "load_study_file",
    "optimize",
    "rank",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qeuopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
