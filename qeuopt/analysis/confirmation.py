"""Confirmation studies: a study file that runs chosen settings again on seeds the study
never used, so a recommendation is checked on fresh noise before anyone trusts it.
Written by the Taguchi analysis (its optimum) and by ``qeuopt export --format study``."""

from __future__ import annotations

import math
import os
import string
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qeuopt.config.spec import GENERATION_FACTORS, spec_to_dict
from qeuopt.errors import InputError
from qeuopt.levels import unique_levels

COMPOSITE = "prompt"  # the one factor of a confirmation study whose settings are no full factorial


def fresh_seeds(spec, last_base_seed: int, count: int) -> list[int]:
    """``count`` base seeds after every image seed the study used, one grid apart, so a
    confirmation meets fresh noise and its images never repeat the study's."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"`seeds`: a positive number of confirmation seeds is allowed; given {count!r}")
    step = spec.generation.images_per_condition
    return [int(last_base_seed) + step * (k + 1) for k in range(count)]


def confirmation_study(
    spec, settings: Sequence[Mapping[str, Any]], *, name: str, seeds: Sequence[int], out_dir: str | Path
) -> tuple[dict[str, Any], list[str]]:
    """Study data (TOML-ready) that runs ``settings`` on ``seeds``, and header lines saying how.

    Design ``full`` over the settings' levels, plus ``seed`` as a factor of fresh seeds (a
    ``seed`` level of the settings is replaced: the confirmation meets new noise). A study
    file can only cross its factors, so when the settings are no full factorial of their
    own levels the file runs a superset: either that factorial, or, when it is smaller,
    one factor ``prompt`` whose levels are the rendered prompts (template ``{prompt}``: the
    artist pairs are then exactly the settings' pairs) crossed with the generation
    factors' levels. The header says how many conditions are the settings themselves.
    """
    if not settings:
        raise InputError("`settings`: at least one setting is needed for a confirmation study; given none")
    data = spec_to_dict(spec)
    data.update(name=name, design={**data["design"], "kind": "full"})
    data["tracking"]["experiment"] = spec.experiment_name  # beside the original in MLflow
    names = [n for n in spec.space.names if n != "seed"]
    factors = {n: unique_levels(s[n] for s in settings) for n in names}
    distinct = len(unique_levels(tuple(s[n] for n in names) for s in settings))
    header = [
        f"Confirmation study of {spec.name!r}, written by qeuopt: {len(settings)} setting(s) on "
        f"{len(seeds)} new seed(s) x {spec.generation.images_per_condition} image(s) each."
    ]
    total = math.prod(len(v) for v in factors.values())
    if total != distinct:
        composite, composite_total = _composite_factors(spec, settings)
        if composite_total < total:
            factors, total = composite, composite_total
            _use_composite_prompt(spec, data, header)
        header.append(
            f"A study file crosses its factors and these settings are no full factorial, so it "
            f"runs {total} condition(s) per seed; {distinct} of them are the settings themselves."
        )
    data["factors"] = {**factors, "seed": [int(s) for s in seeds]}
    _rebase_paths(data, spec, Path(out_dir))
    return data, header


def _composite_factors(spec, settings) -> tuple[dict[str, list], int]:
    generation = [n for n in spec.space.names if n in GENERATION_FACTORS and n != "seed"]
    factors = {
        COMPOSITE: unique_levels(spec.prompt.render(s) for s in settings),
        **{n: unique_levels(s[n] for s in settings) for n in generation},
    }
    return factors, math.prod(len(v) for v in factors.values())


def _use_composite_prompt(spec, data, header) -> None:
    data["prompt"]["template"] = "{" + COMPOSITE + "}"
    header.append(f"The prompt is one factor `{COMPOSITE}` whose levels are the settings' rendered prompts.")
    text = spec.scoring.text
    if text and any(field for _, field, _, _ in string.Formatter().parse(text)):
        data["scoring"]["text"] = ""
        header.append(
            f"scoring.text {text!r} names placeholders that are folded into `{COMPOSITE}`: "
            f"images are scored against their own prompt instead."
        )


def _rebase_paths(data: dict[str, Any], spec, out_dir: Path) -> None:
    """Local files named relative to the study file, made relative to the new file."""
    places = [(data["generation"], key) for key in ("init_image", "model", "model_config")]
    places += [(data["loras"], name) for name in data.get("loras", {})]
    for table, key in places:
        value = table.get(key)
        if not value or Path(value).is_absolute():
            continue
        local = Path(spec.base_dir) / Path(value).expanduser()
        if local.exists():
            table[key] = os.path.relpath(local.resolve(), out_dir.resolve())


def write_study_toml(data: Mapping[str, Any], header: Sequence[str], path: str | Path) -> Path:
    """Write a study file (header as comments) and check it loads: never hand out a bad file."""
    import tomli_w

    from qeuopt.config.load import load_study_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comments = [f"# {line}" for text in header for line in textwrap.wrap(text, 86)]
    comments.append(f"# Run it from the study's working folder: qeuopt run {path}")
    path.write_text("\n".join(comments) + "\n\n" + tomli_w.dumps(dict(data)), encoding="utf-8")
    load_study_file(path)
    return path
