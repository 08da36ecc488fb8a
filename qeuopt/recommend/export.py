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
import shlex
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

from qeuopt.analysis.confirmation import (
    confirmation_study,
    fresh_seeds,
    write_study_toml,
)
from qeuopt.config.schedulers import SCHEDULERS
from qeuopt.errors import DesignError
from qeuopt.levels import find_level, plain

FORMATS = ("csv", "json", "a1111", "study")
RANK_COLUMNS = ("predicted", "support", "observed", "observed_mean", "n_observed")


def sampler_name(scheduler: str) -> str:
    """A1111's sampler label, or "" for ``default`` (the model's own scheduler)."""
    return SCHEDULERS[scheduler][2] if scheduler in SCHEDULERS else ""


def generation_fields(spec, setting: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to generate ``setting`` again, by name."""
    gen = spec.settings_for(setting)
    fields = {"prompt": spec.prompt.render(setting), "negative_prompt": spec.prompt.negative,
              "model": gen.model, "mode": gen.mode, "init_image": gen.init_image if gen.mode == "img2img" else "",
              "steps": gen.steps, "guidance": gen.guidance, "strength": gen.strength, "seed": gen.seed,
              "width": gen.width, "height": gen.height, "scheduler": gen.scheduler,
              "sampler": sampler_name(gen.scheduler), "images": gen.images_per_condition}
    if gen.mode != "img2img":  # txt2img has no denoising strength: a value here would mislead
        del fields["strength"]
    return fields


def setting_rows(spec, ranked) -> list[dict[str, Any]]:
    """One dict per ranked setting: rank, factor levels, prompts, parameters, prediction."""
    levels = spec.space.levels()
    rows = []
    for position, record in enumerate(ranked.to_dict("records"), start=1):
        missing = [name for name in levels if name not in record]
        if missing:
            raise DesignError(f"`ranked`: a column per factor is needed; missing {missing}")
        setting = {name: find_level(name, values, record[name]) for name, values in levels.items()}
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


# ------------------------------------------------------------------------------ top level
def ranked_settings(study, response: str | None = None, top: int = 20, pair: Any = "auto"):
    """:func:`qeuopt.recommend.rank.rank` over the study's observations (replicate rows per image
    where the response has them), for its factors and levels."""
    ranked, response, _ = _rank_study(study, response, top, pair)
    return ranked, response


def _rank_study(study, response, top, pair):
    """:func:`ranked_settings` and the study's condition table it was read from."""
    from qeuopt.analysis.observations import (
        condition_table,
        resolve_response,
        study_observations,
    )
    from qeuopt.recommend.rank import rank

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise DesignError(f"`top`: a positive number of settings is allowed; given {top!r}")
    response = resolve_response(study.spec, response)
    conditions = condition_table(study)
    frame = study_observations(study, response, "auto", conditions=conditions)
    names = study.spec.space.names
    frame = frame.dropna(subset=[response])[names + [response]].reset_index(drop=True)
    return rank(study.spec.space.levels(), frame, response, top=top, pair=pair), response, conditions


def export_settings(study, fmt: str, out: TextIO | str | Path | None = None, *, top: int = 20,
                    response: str | None = None, pair: Any = "auto", seeds: int = 1,
                    denoising_strength: bool = False) -> str | Path:
    """Rank, then write ``fmt``: to ``out`` (a stream or a path), else return the text.
    The ``study`` format always writes a file (default ``<study>_top<N>.toml`` beside it)."""
    if fmt not in FORMATS:
        raise DesignError(f"`format`: allowed: {', '.join(FORMATS)}; given {fmt!r}")
    ranked, response, conditions = _rank_study(study, response, top, pair)
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
