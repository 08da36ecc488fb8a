"""Factors, the space they span, conditions, and the settings of a study.

Everything here is a frozen dataclass built from plain data (a TOML file or a dict),
and turns back into plain data with :func:`spec_to_dict`, so a study round-trips
through TOML/JSON unchanged. Nothing here imports a heavy library.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Generation settings that may also be factors (varied per condition).
GENERATION_FACTORS = ("strength", "guidance", "seed", "steps", "scheduler", "width", "height")


@dataclass(frozen=True)
class Factor:
    """A named factor and its levels, kept exactly as given (floats stay floats)."""

    name: str
    levels: tuple

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(self.levels))


@dataclass(frozen=True)
class Space:
    """The factors of a study, in declaration order."""

    factors: tuple[Factor, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.factors]

    def levels(self) -> dict[str, tuple]:
        return {f.name: f.levels for f in self.factors}

    @classmethod
    def from_mapping(cls, factors: Mapping[str, Any]) -> Space:
        return cls(tuple(Factor(name, tuple(levels)) for name, levels in factors.items()))


@dataclass(frozen=True)
class Condition:
    """One setting of every factor; ``number`` is its Optuna trial number."""

    number: int
    values: Mapping[str, Any]

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass(frozen=True)
class PromptSettings:
    template: str
    negative: str = ""
    syntax: str = "a1111"  # how prompts are read: a1111 | compel | plain (see generate/conditioning.py)

    @property
    def placeholders(self) -> list[str]:
        """Names between braces in the template, in order, without repeats."""
        names = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        return list(dict.fromkeys(names))

    def render(self, values: Mapping[str, Any]) -> str:
        return self.template.format(**{k: values[k] for k in self.placeholders})


@dataclass(frozen=True)
class DesignSettings:
    kind: str = "auto"  # an array name, "auto", "full" or "optuna"
    sampler: str = "tpe"  # optuna only
    trials: int = 0  # optuna only: the trial budget
    objective: str = "clip"  # what a trial's value is


@dataclass(frozen=True)
class GenerationSettings:
    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    mode: str = "txt2img"
    init_image: str = ""
    steps: int = 30
    width: int = 512
    height: int = 512
    grid: tuple[int, int] = (2, 3)  # rows x cols, one image (and seed) per cell
    seed: int = 1234  # the condition's seed when `seed` is not a factor
    guidance: float = 7.5
    strength: float = 0.75
    scheduler: str = "default"
    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    model_config: str = ""  # for a single-file model: a diffusers folder or hub id with its configs
    # opt-in speed and memory settings (see generate/diffusion.py)
    compile: bool = False
    channels_last: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: str = "none"  # low VRAM: "model" (whole models to the GPU in turn) or "sequential" (layer by layer)
    threads: int = 0  # torch's CPU threads; 0: chosen for the machine (see generate/diffusion.py)

    @property
    def images_per_condition(self) -> int:
        return self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class ScoringSettings:
    clip_model: str = "clip-ViT-L-14"
    text: str = ""  # empty: compare each image with its own prompt


@dataclass(frozen=True)
class TrackingSettings:
    mlflow_uri: str = "sqlite:///mlflow.db"
    mlflow_ui: str = "http://127.0.0.1:5000"  # where `qeuopt ui` serves it: trial notes link runs there
    experiment: str = ""  # empty: the study's name
    optuna_storage: str = "sqlite:///optuna.db"
    output_dir: str = "outputs"
    artifact_dir: str = "mlartifacts"
    overlap_logging: bool = True  # two lanes: record one condition while the next generates
    png_compression: int = 1  # zlib level of saved PNGs, 0-9; lossless at every level (README: Speed)
    # human ratings and choices, the source of truth for them: a SQLite file, a postgresql:// URL,
    # or empty: the Optuna storage when that is PostgreSQL (shared by every machine), else ratings.db
    ratings_db: str = ""

    @property
    def ratings_store(self) -> str:
        """Where the ratings live: a file path (SQLite) or a database URL."""
        if self.ratings_db:
            return self.ratings_db
        return self.optuna_storage if self.optuna_storage.startswith("postgresql") else "ratings.db"


@dataclass(frozen=True)
class StudySpec:
    """A whole study as declared; paths are relative to ``base_dir``."""

    name: str
    prompt: PromptSettings
    space: Space
    design: DesignSettings = field(default_factory=DesignSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    loras: Mapping[str, str] = field(default_factory=dict)  # adapter name -> .safetensors path
    base_dir: str = "."

    def settings_for(self, values: Mapping[str, Any]) -> GenerationSettings:
        """Generation settings of one condition: factor levels override the defaults."""
        overrides = {k: v for k, v in values.items() if k in GENERATION_FACTORS}
        return _replace(self.generation, overrides)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name


SECTIONS = {
    "prompt": PromptSettings,
    "design": DesignSettings,
    "generation": GenerationSettings,
    "scoring": ScoringSettings,
    "tracking": TrackingSettings,
}


def _replace(settings, overrides: Mapping[str, Any]):
    data = asdict(settings)
    data.update(overrides)
    return type(settings)(**data)


def section_fields(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def spec_to_dict(spec: StudySpec) -> dict[str, Any]:
    """Plain data of a study, in the layout of a study file (TOML-ready)."""
    data: dict[str, Any] = {"name": spec.name}
    for section in SECTIONS:
        data[section] = asdict(getattr(spec, section))
    data["generation"]["grid"] = list(spec.generation.grid)
    data["factors"] = {f.name: list(f.levels) for f in spec.space.factors}
    if spec.loras:
        data["loras"] = dict(spec.loras)
    return data


def absolute_sqlite_url(url: str) -> str:
    """``sqlite:///relative.db`` pinned to the current folder.

    MLflow caches one database engine per URI string in a process, so a relative URI
    would keep pointing at the folder where it was first used."""
    from pathlib import Path

    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url
