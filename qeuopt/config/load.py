"""Read a study from TOML or a dict and check all of it in one pass.

Every problem is collected, then reported together in one :class:`StudyError`, before
any model loads. Each message names the field in backticks, what is allowed and what was
given. Nothing here imports torch, diffusers, mlflow or optuna.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from qeuopt.config.checks import (
    NUMBER_RULES,
    image_problems,
    input_problems,
    prompt_language_problems,
    speed_problems,
    template_problems,
)
from qeuopt.config.schedulers import SCHEDULER_NAMES
from qeuopt.config.spec import (
    GENERATION_FACTORS,
    SECTIONS,
    PromptSettings,
    Space,
    StudySpec,
)
from qeuopt.errors import DesignError, StudyError
from qeuopt.levels import duplicate_levels

STUDY_SAMPLERS = ("tpe", "gp", "random", "cmaes", "qmc", "oa")  # oa: rounds of arrays + models
OBJECTIVES = ("clip", "rating", "combined", "preference")
MODES = ("txt2img", "img2img")
DTYPES = ("auto", "float32", "float16", "bfloat16")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
TOP_LEVEL = ("name", "factors", "loras", *SECTIONS)


def load_study_file(path: str | Path, environment: bool = False) -> StudySpec:
    """Parse and validate a study TOML file; relative paths resolve beside it.

    ``environment``: also check what the study will use on this machine (databases,
    folders, models; see :mod:`qeuopt.config.environment`), in the same StudyError."""
    path = Path(path)
    if not path.is_file():
        raise StudyError([f"study file not found: `{path}`"])
    data = _read_toml(path)
    data.setdefault("name", path.stem)
    return build_spec(data, base_dir=path.parent, source=str(path), environment=environment)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise StudyError(
            [f"not UTF-8 text: byte {err.start} (line {line}) cannot be decoded; save the study file as UTF-8"],
            source=str(path),
        ) from None
    except OSError as err:
        raise StudyError([f"cannot read the study file: {err.strerror}"], source=str(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise StudyError([f"not valid TOML: {err}"], source=str(path)) from None


def build_spec(
    data: Mapping[str, Any], base_dir: str | Path = ".", source: str | None = None, environment: bool = False
) -> StudySpec:
    """Turn plain study data into a :class:`StudySpec`, or raise one StudyError."""
    problems: list[str] = []
    for key in data:
        if key not in TOP_LEVEL:
            problems.append(f"`{key}`: unknown section; allowed: {', '.join(TOP_LEVEL)}")
    sections = {name: _section(data, name, cls, problems) for name, cls in SECTIONS.items()}
    space = _space(data.get("factors"), problems)
    loras = _loras(data.get("loras", {}), problems)
    name = data.get("name", "study")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"`name`: a non-empty string is allowed; given {name!r}")
    if problems:  # the sections could not even be built: report what we have
        raise StudyError(problems, source)
    spec = StudySpec(name=name, space=space, loras=loras, base_dir=str(Path(base_dir).resolve()), **sections)
    problems.extend(check_spec(spec))
    if environment:
        from qeuopt.config.environment import environment_problems

        problems.extend(environment_problems(spec))
    if problems:
        raise StudyError(list(dict.fromkeys(problems)), source)  # a check of the file and of the machine may agree
    return spec


def _section(data: Mapping[str, Any], name: str, cls, problems: list[str]):
    raw = data.get(name, {})
    if not isinstance(raw, Mapping):
        problems.append(f"`{name}`: a table is allowed; given {raw!r}")
        return None
    allowed = {f.name: f for f in fields(cls)}
    if name == "prompt" and "template" not in raw:
        problems.append("`prompt.template`: required; give the prompt with {placeholders} for the styles")
        return None
    values = {}
    for key, value in raw.items():
        if key not in allowed:
            problems.append(f"`{name}.{key}`: unknown setting; allowed: {', '.join(allowed)}")
            continue
        converted = _convert(f"{name}.{key}", value, allowed[key].default, problems)
        if converted is not None:
            values[key] = converted
    return cls(**values)


def _convert(field_name: str, value: Any, default: Any, problems: list[str]):
    """Check a setting against the type of its default; ints are accepted for floats."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):  # the grid: [rows, cols]
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        )
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        kind = "[rows, cols] of positive integers" if isinstance(default, tuple) else type(default).__name__
        problems.append(f"`{field_name}`: {kind} is allowed; given {value!r}")
        return None
    return value


def _space(raw: Any, problems: list[str]) -> Space | None:
    if not isinstance(raw, Mapping) or not raw:
        problems.append(f"`factors`: a table of name = [levels...] is allowed; given {raw!r}")
        return None
    good = {}
    for name, levels in raw.items():
        where = f"`factors.{name}`"
        if not isinstance(levels, list) or not levels:
            problems.append(f"{where}: a non-empty list of levels is allowed; given {levels!r}")
        elif not all(isinstance(v, (str, int, float, bool)) for v in levels):
            problems.append(f"{where}: levels must be strings or numbers; given {levels!r}")
        elif duplicate_levels(levels):
            problems.append(
                f"{where}: levels must be distinct; given {levels!r}, repeating {duplicate_levels(levels)!r}"
            )
        else:
            good[name] = levels
    return Space.from_mapping(good)


def _loras(raw: Any, problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) for v in raw.values()):
        problems.append(f'`loras`: a table of name = "path/to/file.safetensors" is allowed; given {raw!r}')
        return {}
    return dict(raw)


def check_spec(spec: StudySpec) -> list[str]:
    """Every rule that looks across sections; returns the problems found."""
    problems: list[str] = template_problems(spec)
    if not problems:  # the prompt language and the names need a template that parses
        problems += prompt_language_problems(spec) + _check_factor_names(spec)
    problems += input_problems(spec)
    problems += _check_design(spec)
    problems += _check_generation(spec)
    problems += speed_problems(spec)
    return problems


def _check_factor_names(spec: StudySpec) -> list[str]:
    problems = []
    placeholders = spec.prompt.placeholders
    for name in spec.space.names:
        if name not in placeholders and name not in GENERATION_FACTORS:
            problems.append(
                f"`factors.{name}`: not a placeholder of `prompt.template` ({', '.join(placeholders) or 'none'})"
                f" nor a generation setting ({', '.join(GENERATION_FACTORS)})"
            )
    for name in placeholders:
        if name not in spec.space.names:
            problems.append(
                f"`prompt.template`: placeholder {{{name}}} has no factor; add `factors.{name}` or remove it"
            )
    scoring_text = PromptSettings(spec.scoring.text)  # the CLIP text may name factors too
    for name in scoring_text.placeholders:
        if name not in spec.space.names:
            problems.append(
                f"`scoring.text`: placeholder {{{name}}} has no factor; allowed: "
                f"{', '.join('{' + n + '}' for n in spec.space.names)}"
            )
    return problems


def _check_design(spec: StudySpec) -> list[str]:
    from qeuopt.design.assign import assign

    design, problems = spec.design, []
    if design.kind == "optuna":
        if design.sampler not in STUDY_SAMPLERS:
            problems.append(f"`design.sampler`: allowed: {', '.join(STUDY_SAMPLERS)}; given {design.sampler!r}")
        if design.trials < 1:
            problems.append(f"`design.trials`: a positive trial budget is needed with `optuna`; given {design.trials}")
    elif design.kind != "full":  # an array name or "auto": unknown names are reported by assign
        try:
            assign({f.name: len(f.levels) for f in spec.space.factors}, design.kind)
        except DesignError as err:
            problems.append(str(err))
    if design.objective not in OBJECTIVES:
        problems.append(f"`design.objective`: allowed: {', '.join(OBJECTIVES)}; given {design.objective!r}")
    return problems


def _levels_or_default(spec: StudySpec, name: str) -> list:
    levels = spec.space.levels().get(name)
    return list(levels) if levels is not None else [getattr(spec.generation, name)]


def _check_generation(spec: StudySpec) -> list[str]:
    gen, problems = spec.generation, []
    if gen.mode not in MODES:
        problems.append(f"`generation.mode`: allowed: {', '.join(MODES)}; given {gen.mode!r}")
    if gen.mode == "img2img":
        problems += _check_init_image(spec)
    problems += _check_model(spec)
    problems += _check_numbers(spec)
    for sched in _levels_or_default(spec, "scheduler"):
        if sched not in SCHEDULER_NAMES:
            problems.append(f"`scheduler`: allowed: {', '.join(SCHEDULER_NAMES)}; given {sched!r}")
    if gen.dtype not in DTYPES:
        problems.append(f"`generation.dtype`: allowed: {', '.join(DTYPES)}; given {gen.dtype!r}")
    if not (gen.device in ("auto", "cpu", "mps") or gen.device.startswith("cuda")):
        problems.append(f"`generation.device`: allowed: auto, cpu, cuda, cuda:N, mps; given {gen.device!r}")
    return problems


def _check_init_image(spec: StudySpec) -> list[str]:
    image = spec.generation.init_image
    if not image:
        return ["`generation.init_image`: img2img needs an init image; give a path to a PNG/JPEG"]
    if not (Path(spec.base_dir) / image).is_file():
        return [f"`generation.init_image`: file not found: {image!r} (relative to {spec.base_dir})"]
    return image_problems(Path(spec.base_dir) / image)


def _check_model(spec: StudySpec) -> list[str]:
    model = spec.generation.model
    if model.startswith("qeuopt-tiny:"):
        return (
            []
            if model in ("qeuopt-tiny:sd",)
            else [f"`generation.model`: allowed tiny model: qeuopt-tiny:sd; given {model!r}"]
        )
    suffix = Path(model).suffix.lower()
    if suffix in PICKLE_SUFFIXES and not spec.generation.allow_pickle:
        return [
            f"`generation.model`: {model!r} is a pickle checkpoint, which can run arbitrary code when loaded; "
            "use a .safetensors file or a diffusers folder, or set `generation.allow_pickle = true` if you trust it"
        ]
    looks_local = suffix in (".safetensors", *PICKLE_SUFFIXES) or model.startswith((".", "/", "~"))
    if looks_local and not (Path(spec.base_dir) / Path(model).expanduser()).exists():
        return [f"`generation.model`: local model not found: {model!r} (relative to {spec.base_dir})"]
    return []


def _check_numbers(spec: StudySpec) -> list[str]:
    problems = []
    numeric = NUMBER_RULES  # finite and bounded: see config/checks.py
    for name, (ok, allowed) in numeric.items():
        where = f"factors.{name}" if name in spec.space.names else f"generation.{name}"
        for value in _levels_or_default(spec, name):
            if isinstance(value, bool) or not ok(value):
                problems.append(f"`{where}`: {allowed} is allowed; given {value!r}")
    if spec.generation.mode == "img2img" and not problems:
        steps, strength = min(_levels_or_default(spec, "steps")), min(_levels_or_default(spec, "strength"))
        if int(steps * strength) < 1:
            problems.append(
                f"`strength`: img2img runs int(steps * strength) denoising steps, which is 0 for "
                f"steps={steps}, strength={strength}; raise steps or strength"
            )
    return problems
