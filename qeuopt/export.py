"""Prompt sets from ranked settings: CSV, JSON, AUTOMATIC1111 lines, and study TOML files.

A *setting* gives every factor a level. :func:`setting_rows` renders each one as the study
would run it: the full prompt and negative prompt from the template and every generation
parameter, fixed settings of the study included, next to the ranking's ``predicted``,
``support``, ``observed``, ``observed_mean`` and ``n_observed``.

AUTOMATIC1111 lines are for its "Prompts from file or textbox" script, which splits each
line with :func:`shlex.split` and reads ``--option value`` pairs; every value is quoted
with :func:`shlex.quote`, and newlines in prompts become spaces (the script reads one job
per line). ``--denoising_strength`` is written only when asked for: the upstream script
does not know that option, and a line with an unknown option is not parsed at all (the
whole line becomes the prompt); some forks and patched copies accept it. ``--sampler_name``
is written when the study names a scheduler (``default`` keeps the model's own, unknown here).

A study TOML runs settings again as a *confirmation study* on seeds the study never used.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shlex
import string
import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

import numpy as np

from qeuopt.exceptions import DesignError
from qeuopt.generate.schedulers import SCHEDULERS
from qeuopt.space import GENERATION_FACTORS, spec_to_dict

FORMATS = ("csv", "json", "a1111", "study")
RANK_COLUMNS = ("predicted", "lower", "upper", "support", "observed", "observed_mean", "n_observed")
COMPOSITE = "prompt"  # the one factor of a confirmation study whose settings are no full factorial


def plain(value: Any) -> Any:
    """numpy scalars as Python values, NaN as None: what CSV, JSON and TOML can hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def as_level(name: str, levels: Sequence, value: Any) -> Any:
    """The level object of the study equal to ``value`` (a bool never matches 1, nor 1 True)."""
    value = plain(value)
    for level in levels:
        if level == value and isinstance(level, bool) == isinstance(value, bool):
            return level
    raise DesignError(f"`{name}`: allowed levels {list(levels)}; the ranking gives {value!r}")


def sampler_name(scheduler: str) -> str:
    """A1111's sampler label, or "" for ``default`` (the model's own scheduler)."""
    return SCHEDULERS[scheduler][2] if scheduler in SCHEDULERS else ""


def generation_fields(spec, setting: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to generate ``setting`` again, by name."""
    gen = spec.settings_for(setting)
    return {"prompt": spec.prompt.render(setting), "negative_prompt": spec.prompt.negative,
            "model": gen.model, "mode": gen.mode, "init_image": gen.init_image if gen.mode == "img2img" else "",
            "steps": gen.steps, "guidance": gen.guidance, "strength": gen.strength, "seed": gen.seed,
            "width": gen.width, "height": gen.height, "scheduler": gen.scheduler,
            "sampler": sampler_name(gen.scheduler), "images": gen.images_per_condition}


def setting_rows(spec, ranked) -> list[dict[str, Any]]:
    """One dict per ranked setting: rank, factor levels, prompts, parameters, prediction."""
    levels = spec.space.levels()
    rows = []
    for position, record in enumerate(ranked.to_dict("records"), start=1):
        missing = [name for name in levels if name not in record]
        if missing:
            raise DesignError(f"`ranked`: a column per factor is needed; missing {missing}")
        setting = {name: as_level(name, values, record[name]) for name, values in levels.items()}
        row = {"rank": position, **setting}
        for key, value in generation_fields(spec, setting).items():
            if key in row and row[key] != value:  # a placeholder named like a parameter
                raise DesignError(f"`factors.{key}`: the name is an export column ({value!r}); rename the factor")
            row[key] = value
        row.update({key: plain(record[key]) for key in RANK_COLUMNS if key in record})
        rows.append(row)
    return rows


# ------------------------------------------------------------------------ CSV, JSON, A1111
def write_csv(rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["rank"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def write_json(rows: Sequence[Mapping[str, Any]], out: TextIO, study: str, response: str) -> None:
    json.dump({"study": study, "response": response, "settings": list(rows)}, out, indent=2,
              ensure_ascii=False, allow_nan=False)
    out.write("\n")


def one_line(text: str) -> str:
    return " ".join(text.splitlines())


def a1111_line(row: Mapping[str, Any], denoising_strength: bool = False) -> str:
    """One "Prompts from file or textbox" line for a setting row of :func:`setting_rows`."""
    options = [("prompt", one_line(row["prompt"])), ("negative_prompt", one_line(row["negative_prompt"])),
               ("steps", row["steps"]), ("cfg_scale", row["guidance"]), ("seed", row["seed"]),
               ("width", row["width"]), ("height", row["height"])]
    if row.get("sampler"):
        options.append(("sampler_name", row["sampler"]))
    if denoising_strength and row.get("mode") == "img2img":
        options.append(("denoising_strength", row["strength"]))
    return " ".join(f"--{name} {shlex.quote(str(value))}" for name, value in options)


def write_a1111(rows: Iterable[Mapping[str, Any]], out: TextIO, denoising_strength: bool = False) -> None:
    for row in rows:
        out.write(a1111_line(row, denoising_strength) + "\n")


# ---------------------------------------------------------------------- confirmation study
def fresh_seeds(spec, last_base_seed: int, count: int) -> list[int]:
    """``count`` base seeds after every image seed the study used, one grid apart, so a
    confirmation meets fresh noise and its images never repeat the study's."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DesignError(f"`seeds`: a positive number of confirmation seeds is allowed; given {count!r}")
    step = spec.generation.images_per_condition
    return [int(last_base_seed) + step * (k + 1) for k in range(count)]


def _unique(values: Iterable[Any]) -> list[Any]:
    """First-appearance order; 1, 1.0 and True stay apart, as validation tells levels apart."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(repr(value), value)
    return list(seen.values())


def confirmation_study(spec, settings: Sequence[Mapping[str, Any]], *, name: str, seeds: Sequence[int],
                       out_dir: str | Path) -> tuple[dict[str, Any], list[str]]:
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
        raise DesignError("`settings`: at least one setting is needed for a confirmation study; given none")
    data = spec_to_dict(spec)
    data.update(name=name, design={**data["design"], "kind": "full"})
    data["tracking"]["experiment"] = spec.experiment_name  # beside the original in MLflow
    names = [n for n in spec.space.names if n != "seed"]
    factors = {n: _unique(s[n] for s in settings) for n in names}
    distinct = len(_unique(tuple(s[n] for n in names) for s in settings))
    header = [f"Confirmation study of {spec.name!r}, written by qeuopt: {len(settings)} setting(s) on "
              f"{len(seeds)} new seed(s) x {spec.generation.images_per_condition} image(s) each."]
    total = math.prod(len(v) for v in factors.values())
    if total != distinct:
        composite, composite_total = _composite_factors(spec, settings)
        if composite_total < total:
            factors, total = composite, composite_total
            _use_composite_prompt(spec, data, header)
        header.append(f"A study file crosses its factors and these settings are no full factorial, so it "
                      f"runs {total} condition(s) per seed; {distinct} of them are the settings themselves.")
    data["factors"] = {**factors, "seed": [int(s) for s in seeds]}
    _rebase_paths(data, spec, Path(out_dir))
    return data, header


def _composite_factors(spec, settings) -> tuple[dict[str, list], int]:
    generation = [n for n in spec.space.names if n in GENERATION_FACTORS and n != "seed"]
    factors = {COMPOSITE: _unique(spec.prompt.render(s) for s in settings),
               **{n: _unique(s[n] for s in settings) for n in generation}}
    return factors, math.prod(len(v) for v in factors.values())


def _use_composite_prompt(spec, data, header) -> None:
    data["prompt"]["template"] = "{" + COMPOSITE + "}"
    header.append(f"The prompt is one factor `{COMPOSITE}` whose levels are the settings' rendered prompts.")
    text = spec.scoring.text
    if text and any(field for _, field, _, _ in string.Formatter().parse(text)):
        data["scoring"]["text"] = ""
        header.append(f"scoring.text {text!r} names placeholders that are folded into `{COMPOSITE}`: "
                      f"images are scored against their own prompt instead.")


def _rebase_paths(data: dict[str, Any], spec, out_dir: Path) -> None:
    """Local files named relative to the study file, made relative to the new file."""
    for key in ("init_image", "model", "model_config"):
        value = data["generation"].get(key)
        if not value or Path(value).is_absolute():
            continue
        local = Path(spec.base_dir) / Path(value).expanduser()
        if local.exists():
            data["generation"][key] = os.path.relpath(local.resolve(), out_dir.resolve())


def write_study_toml(data: Mapping[str, Any], header: Sequence[str], path: str | Path) -> Path:
    """Write a study file (header as comments) and check it loads: never hand out a bad file."""
    import tomli_w

    from qeuopt.validation import load_study_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comments = [f"# {line}" for text in header for line in textwrap.wrap(text, 86)]
    comments.append(f"# Run it from the study's working folder: qeuopt run {path}")
    path.write_text("\n".join(comments) + "\n\n" + tomli_w.dumps(dict(data)), encoding="utf-8")
    load_study_file(path)
    return path


# ------------------------------------------------------------------------------ top level
def ranked_settings(study, response: str | None = None, top: int = 20, pair: Any = "auto", diverse: bool = True):
    """:func:`qeuopt.recommend.rank` over the study's observations (replicate rows per image
    where the response has them), for its factors and levels; ``.attrs`` says which model
    was chosen and why."""
    ranked, response, _ = _rank_study(study, response, top, pair, diverse)
    return ranked, response


def _rank_study(study, response, top, pair, diverse=True):
    """:func:`ranked_settings` and the study's condition table it was read from."""
    from qeuopt.observations import condition_table, resolve_response, study_observations
    from qeuopt.recommend import rank

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise DesignError(f"`top`: a positive number of settings is allowed; given {top!r}")
    response = resolve_response(study.spec, response)
    conditions = condition_table(study)
    frame = study_observations(study, response, "auto", conditions=conditions)
    names = study.spec.space.names
    frame = frame.dropna(subset=[response])[names + [response]].reset_index(drop=True)
    ranked = rank(study.spec.space.levels(), frame, response, top=top, pair=pair, diverse=diverse)
    return ranked, response, conditions


def export_settings(study, fmt: str, out: TextIO | str | Path | None = None, *, top: int = 20,
                    response: str | None = None, pair: Any = "auto", seeds: int = 1,
                    denoising_strength: bool = False, diverse: bool = True) -> str | Path:
    """Rank, then write ``fmt``: to ``out`` (a stream or a path), else return the text.
    The ``study`` format always writes a file (default ``<study>_top<N>.toml`` beside it)."""
    if fmt not in FORMATS:
        raise DesignError(f"`format`: allowed: {', '.join(FORMATS)}; given {fmt!r}")
    ranked, response, conditions = _rank_study(study, response, top, pair, diverse)
    rows = setting_rows(study.spec, ranked)
    if fmt == "study":
        return _export_study(study, rows, out, top, seeds, conditions["base_seed"].max())
    buffer = io.StringIO()
    if fmt == "csv":
        write_csv(rows, buffer)
    elif fmt == "json":
        write_json(rows, buffer, study.name, response)
    else:
        write_a1111(rows, buffer, denoising_strength)
    return _deliver(buffer.getvalue(), out)


def _export_study(study, rows, out, top: int, seeds: int, last_base_seed: int) -> Path:
    spec = study.spec
    path = Path(out) if isinstance(out, (str, Path)) else Path(spec.base_dir) / f"{spec.name}_top{top}.toml"
    new_seeds = fresh_seeds(spec, last_base_seed, seeds)
    settings = [{n: row[n] for n in spec.space.names} for row in rows]
    data, header = confirmation_study(spec, settings, name=f"{spec.name}_top{top}", seeds=new_seeds,
                                      out_dir=path.parent)
    return write_study_toml(data, header, path)


def _deliver(text: str, out) -> str | Path:
    if out is None:
        return text
    if isinstance(out, (str, Path)):
        Path(out).write_text(text, encoding="utf-8")
        return Path(out)
    out.write(text)
    return text
