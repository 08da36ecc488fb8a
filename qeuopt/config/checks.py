"""Checks of a study that need nothing but the study itself: numbers finite and within
bounds, names safe as paths and keys, template syntax, paths that stay inside the working
folder, an init image that decodes, the speed settings (threads, offload, PNG compression).

Each function returns a list of problems (field in backticks, what is allowed, what was
given); :mod:`qeuopt.config.load` collects them all into one ``StudyError``.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import string
from pathlib import Path

from qeuopt.config.spec import StudySpec
from qeuopt.errors import PromptSyntaxError

# The bounds users are promised (README: "Limits of a study").
MAX_GUIDANCE = 50.0  # A1111's slider stops at 30; beyond ~20 images burn out
MAX_STEPS = 1000  # the schedulers are trained on 1000 timesteps
MAX_SIDE = 4096  # pixels; diffusers needs multiples of 8
MAX_GRID_IMAGES = 256  # images of one condition, generated in one pipeline call
MAX_CONDITION_MEGAPIXELS = 64  # one call holds every image's latents and activations at once
MAX_TRIALS = 100_000
# A study name becomes a folder (outputs/<name>/cNNN), an Optuna study name and an MLflow tag.
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A factor name is a {placeholder}, an Optuna parameter, an MLflow param key and a column.
FACTOR_RULE = re.compile(r"[^\W\d]\w{0,63}")
EXPERIMENT_RULE = re.compile(r"[\w][\w .-]{0,199}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# name -> (test, what is allowed); load._check_numbers applies them to every level and default
NUMBER_RULES = {
    "strength": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "guidance": (lambda v: _number(v) and 0 <= v <= MAX_GUIDANCE, f"a finite number in 0..{MAX_GUIDANCE:g}"),
    "steps": (lambda v: _integer(v) and 1 <= v <= MAX_STEPS, f"an integer in 1..{MAX_STEPS}"),
    "seed": (lambda v: _integer(v) and 0 <= v < 2**63 - 1024, "an integer in 0..2^63"),
    "width": (lambda v: _integer(v) and 8 <= v <= MAX_SIDE and v % 8 == 0, f"a multiple of 8 in 8..{MAX_SIDE}"),
    "height": (lambda v: _integer(v) and 8 <= v <= MAX_SIDE and v % 8 == 0, f"a multiple of 8 in 8..{MAX_SIDE}"),
}


def require_valid_settings(settings) -> None:
    """The last guard before a pipeline call, for settings built without a study file."""
    from qeuopt.errors import InputError

    bad = [
        f"`{name}`: {allowed} is allowed; given {getattr(settings, name)!r}"
        for name, (ok, allowed) in NUMBER_RULES.items()
        if not ok(getattr(settings, name))
    ]
    if bad:
        raise InputError("; ".join(bad))


def input_problems(spec) -> list[str]:
    """Every check of this module, in the order a user would fix them."""
    problems = name_problems(spec) + level_problems(spec) + size_problems(spec) + path_problems(spec)
    if not 0 <= spec.design.trials <= MAX_TRIALS:
        problems.append(f"`design.trials`: an integer in 0..{MAX_TRIALS} is allowed; given {spec.design.trials}")
    return problems


def template_problems(spec) -> list[str]:
    """``prompt.template`` and ``scoring.text`` are filled with ``str.format``: only plain
    ``{factor}`` placeholders, and literal braces doubled."""
    problems = []
    for field, text in (("prompt.template", spec.prompt.template), ("scoring.text", spec.scoring.text)):
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as err:
            problems.append(
                f"`{field}`: braces do not pair up ({err}); placeholders are written {{name}} and "
                f"a literal brace {{{{ or }}}}; given {text!r}"
            )
            continue
        for _, name, format_spec, conversion in parsed:
            if name is not None and (not FACTOR_RULE.fullmatch(name) or format_spec or conversion):
                given = (
                    "{"
                    + name
                    + (f"!{conversion}" if conversion else "")
                    + (f":{format_spec}" if format_spec else "")
                    + "}"
                )
                problems.append(f"`{field}`: only plain {{factor_name}} placeholders are allowed; given {given}")
    return problems


def name_problems(spec) -> list[str]:
    problems = []
    if not NAME_RULE.fullmatch(spec.name):
        problems.append(
            f"`name`: 1-100 letters, digits, _ . - (starting with a letter or digit) are allowed, "
            f"because the name becomes a folder and a database key; given {spec.name!r}"
        )
    experiment = spec.tracking.experiment
    if experiment and not EXPERIMENT_RULE.fullmatch(experiment):
        problems.append(
            f"`tracking.experiment`: 1-200 letters, digits, spaces, _ . - are allowed; given {experiment!r}"
        )
    for name in spec.space.names:
        if not FACTOR_RULE.fullmatch(name):
            problems.append(
                f"`factors.{name}`: a factor name is 1-64 letters, digits and _ , not starting with a "
                f"digit (it is a {{placeholder}} and a tracking key); given {name!r}"
            )
    return problems


def level_problems(spec) -> list[str]:
    """NaN and infinity make no sense as a level anywhere (and NaN is never equal to itself,
    so a resumed study could not find its row again)."""
    problems = []
    for factor in spec.space.factors:
        if factor.name in NUMBER_RULES:  # reported with its allowed range by load._check_numbers
            continue
        bad = [v for v in factor.levels if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            problems.append(f"`factors.{factor.name}`: levels must be finite numbers or strings; given {bad!r}")
    return problems


def _largest(spec, name: str):
    levels = spec.space.levels().get(name, (getattr(spec.generation, name),))
    numbers = [v for v in levels if _integer(v)]
    return max(numbers, default=0)


def size_problems(spec) -> list[str]:
    rows, cols = spec.generation.grid
    count = rows * cols
    if count > MAX_GRID_IMAGES:
        return [
            f"`generation.grid`: at most {MAX_GRID_IMAGES} images per condition are allowed; "
            f"given {rows}x{cols} = {count}"
        ]
    megapixels = _largest(spec, "width") * _largest(spec, "height") * count / 1e6
    if megapixels > MAX_CONDITION_MEGAPIXELS:
        return [
            f"`generation.grid`: a condition is generated in one call, and {count} images of "
            f"{_largest(spec, 'width')}x{_largest(spec, 'height')} are {megapixels:.0f} megapixels; at most "
            f"{MAX_CONDITION_MEGAPIXELS} are allowed: use a smaller grid or size"
        ]
    return []


def inside_working_folder(path: str) -> bool:
    """True for a relative path that does not climb out (checked on the text: a link the
    user made inside the folder is the user's choice, not the study file's)."""
    if not path or os.path.isabs(path) or path.startswith("~"):
        return False
    parts = Path(os.path.normpath(path)).parts
    return not parts or parts[0] != ".."


def sqlite_file(uri: str) -> str | None:
    """The file part of a ``sqlite:///`` URI (None for another scheme)."""
    if not uri.startswith("sqlite:"):
        return None
    return uri.split("sqlite:///", 1)[1].split("?", 1)[0] if uri.startswith("sqlite:///") else ""


def sqlite_problem(field: str, uri: str) -> str:
    return f"`{field}`: a SQLite file is needed, written sqlite:///file.db (3 slashes, then the path); given {uri!r}"


def path_problems(spec) -> list[str]:
    """Everything qeuopt writes stays inside the working folder (the current folder), so a
    shared study file cannot make it write, or delete, anywhere else."""
    tracking, problems = spec.tracking, []
    paths = {
        "tracking.output_dir": tracking.output_dir,
        "tracking.artifact_dir": tracking.artifact_dir,
    }
    ratings = tracking.ratings_store  # a file, or a URL: a database server is not a path
    ratings_file = ratings if "://" not in ratings else sqlite_file(ratings)
    if ratings_file is not None:
        paths["tracking.ratings_db"] = ratings_file
    for field in ("mlflow_uri", "optuna_storage"):
        path = sqlite_file(getattr(tracking, field))
        if path is not None:
            paths[f"tracking.{field}"] = path
    for field, path in paths.items():
        if field.endswith(("_uri", "_storage", "_db")) and path in ("", ":memory:"):
            uri = ratings if field == "tracking.ratings_db" else getattr(tracking, field.split(".")[1])
            problems.append(sqlite_problem(field, uri))
        elif not inside_working_folder(path):
            problems.append(
                f"`{field}`: a relative path inside the working folder is allowed (no absolute "
                f"path, no ..); given {path!r}"
            )
    return problems


def image_problems(path: Path, field: str = "generation.init_image") -> list[str]:
    """The init image must decode completely (a truncated PNG fails only in ``load``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return [f"`{field}`: {str(path)!r} is not a readable image ({type(err).__name__}: {err})"]
    return []


def prompt_language_problems(spec: StudySpec) -> list[str]:
    """`prompt.syntax`, the `[loras]` files, and every LoRA tag a condition can render."""
    from qeuopt.config.prompt_syntax import SYNTAXES, find_loras, schedule

    prompt, problems = spec.prompt, []
    if prompt.syntax not in SYNTAXES:
        return [f"`prompt.syntax`: allowed: {', '.join(SYNTAXES)}; given {prompt.syntax!r}"]
    for name, path in spec.loras.items():
        if Path(path).suffix.lower() != ".safetensors":
            problems.append(f"`loras.{name}`: a .safetensors file is allowed; given {path!r}")
        elif not (Path(spec.base_dir) / Path(path).expanduser()).is_file():
            problems.append(f"`loras.{name}`: file not found: {path!r} (relative to {spec.base_dir})")
    if prompt.syntax != "a1111":
        return problems
    for where, text in (("prompt.template", prompt.template), ("prompt.negative", prompt.negative)):
        try:
            schedule(text, 1)
        except PromptSyntaxError as err:
            problems.append(f"`{where}`: {err}")
    if find_loras(prompt.negative):
        problems.append("`prompt.negative`: LoRA tags apply to the prompt only; move them to `prompt.template`")
    for tag in _rendered_lora_tags(spec):
        if tag.name not in spec.loras:
            problems.append(
                f"`prompt.template`: {tag.text} names no LoRA of `[loras]` "
                f'({", ".join(spec.loras) or "none defined"}); add `loras.{tag.name}` = "file.safetensors"'
            )
        elif not math.isfinite(tag.weight):
            problems.append(
                f"`prompt.template`: {tag.text}: a finite number is allowed as weight ("
                "<lora:name:0.8>; A1111's te/unet multipliers are not supported)"
            )
    return list(dict.fromkeys(problems))


def _rendered_lora_tags(spec: StudySpec):
    """LoRA tags of the template with each tag's placeholders filled by every level."""
    from qeuopt.config.prompt_syntax import find_loras

    levels = spec.space.levels()
    tags = []
    for raw in re.findall(r"<lora:[^>]*>", spec.prompt.template):
        names = [n for _, n, _, _ in string.Formatter().parse(raw) if n]
        if any(n not in levels for n in names):
            continue  # reported as a placeholder without factor
        for combo in itertools.product(*(levels[n] for n in names)):
            tags += find_loras(raw.format(**dict(zip(names, combo))) if names else raw)
    for name in spec.prompt.placeholders:
        tags += [t for level in levels.get(name, ()) if isinstance(level, str) for t in find_loras(level)]
    return tags


OFFLOADS = ("none", "model", "sequential")


def speed_problems(spec: StudySpec) -> list[str]:
    """The thread count, the low-VRAM offload switch and the PNG compression level."""
    gen, problems = spec.generation, []
    level = spec.tracking.png_compression
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        problems.append(
            f"`tracking.png_compression`: an integer 0-9 is allowed (zlib level; 0 stores, 9 packs tightest); "
            f"given {level!r}"
        )
    if isinstance(gen.threads, bool) or not isinstance(gen.threads, int) or gen.threads < 0:
        problems.append(
            f"`generation.threads`: an integer >= 0 is allowed (0: chosen for the machine); given {gen.threads!r}"
        )
    if gen.offload not in OFFLOADS:
        problems.append(f"`generation.offload`: allowed: {', '.join(OFFLOADS)}; given {gen.offload!r}")
    elif gen.offload != "none" and gen.device in ("cpu", "mps"):
        problems.append(
            f"`generation.offload`: {gen.offload!r} moves weights between the CPU and a CUDA GPU; "
            f"the device is {gen.device!r}"
        )
    return problems
