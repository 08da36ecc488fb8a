"""Prompt sets from ranked settings: CSV, JSON, AUTOMATIC1111 lines, and study TOML files.

A *setting* gives every factor a level. :func:`setting_rows` renders each one as the study
would run it: the full prompt and negative prompt from the template and every generation
parameter, fixed settings of the study included, next to the ranking's ``predicted``,
``support``, ``observed``, ``observed_mean`` and ``n_observed``.

AUTOMATIC1111 files are for its "Prompts from file or textbox" script (see
:mod:`qeuopt.generate.prompts_file`): one file per img2img strength and schedule type, each
line one setting with its seeds (``--n_iter``), the sampler named as the chosen A1111 version
takes it, and a first comment line saying what to set in the UI.

A study TOML runs settings again as a *confirmation study* on seeds the study never used.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from qeuopt.analysis.confirmation import (
    confirmation_study,
    fresh_seeds,
    write_study_toml,
)
from qeuopt.errors import InputError
from qeuopt.generate.prompts_file import group_rows, job_line, model_scheduler, sampler_and_schedule, spec_notes
from qeuopt.levels import find_level, plain

FORMATS = ("csv", "json", "a1111", "study")
RANK_COLUMNS = ("predicted", "lower", "upper", "support", "observed", "observed_mean", "n_observed")


def sampler_name(scheduler: str) -> str:
    """A1111 1.9+'s sampler label, or "" for ``default`` (the model's own scheduler)."""
    return sampler_and_schedule(scheduler, "1.9")[0]


def generation_fields(spec, setting: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to generate ``setting`` again, by name."""
    gen = spec.settings_for(setting)
    fields = {
        "prompt": spec.prompt.render(setting),
        "negative_prompt": spec.prompt.negative,
        "model": gen.model,
        "mode": gen.mode,
        "init_image": gen.init_image if gen.mode == "img2img" else "",
        "steps": gen.steps,
        "guidance": gen.guidance,
        "strength": gen.strength,
        "seed": gen.seed,
        "width": gen.width,
        "height": gen.height,
        "scheduler": gen.scheduler,
        "sampler": sampler_name(gen.scheduler),
        "images": gen.images_per_condition,
    }
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
            raise InputError(f"`ranked`: a column per factor is needed; missing {missing}")
        setting = {name: find_level(name, values, record[name]) for name, values in levels.items()}
        row = {"rank": position, **setting}
        for key, value in generation_fields(spec, setting).items():
            if key in row and row[key] != value:  # a placeholder named like a parameter
                raise InputError(f"`factors.{key}`: the name is an export column ({value!r}); rename the factor")
            row[key] = value
        row.update({key: plain(record[key]) for key in RANK_COLUMNS if key in record})
        rows.append(row)
    return rows


# ------------------------------------------------------------------------ CSV, JSON, A1111
def write_settings_csv(rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["rank"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def write_json(rows: Sequence[Mapping[str, Any]], out: TextIO, study: str, response: str) -> None:
    json.dump(
        {"study": study, "response": response, "settings": list(rows)},
        out,
        indent=2,
        ensure_ascii=False,
        allow_nan=False,
    )
    out.write("\n")


def a1111_line(row: Mapping[str, Any], denoising_strength: bool = False) -> str:
    """One "Prompts from file or textbox" line (A1111 1.9+) for a row of :func:`setting_rows`."""
    return job_line(row, row.get("sampler", ""), denoising_strength)


def a1111_files(
    rows: Iterable[Mapping[str, Any]], spec=None, version: str = "1.9", denoising_strength: bool = False
) -> dict[str, list[str]]:
    """{file tag: lines} (see :func:`qeuopt.generate.prompts_file.group_rows`)."""
    if spec is None:
        return group_rows(rows, version, denoising_strength)
    default = model_scheduler(spec.generation.model, spec.base_dir)
    return group_rows(rows, version, denoising_strength, default, spec_notes(spec))


def write_a1111(
    rows: Iterable[Mapping[str, Any]], out: TextIO, denoising_strength: bool = False, spec=None, version: str = "1.9"
) -> None:
    """Every file's lines, one after the other, each file's header comment first."""
    for lines in a1111_files(rows, spec, version, denoising_strength).values():
        out.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ top level
def ranked_settings(study, response: str | None = None, top: int = 20, pair: Any = "auto", diverse: bool = True):
    """:func:`qeuopt.recommend.rank.rank` over the study's observations (replicate rows per image
    where the response has them), for its factors and levels; ``.attrs`` says which model
    was chosen and why."""
    ranked, response, _ = _rank_study(study, response, top, pair, diverse)
    return ranked, response


def _rank_study(study, response, top, pair, diverse=True):
    """:func:`ranked_settings` and the study's condition table it was read from."""
    from qeuopt.analysis.observations import (
        condition_table,
        resolve_response,
        study_observations,
    )
    from qeuopt.recommend.rank import rank

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InputError(f"`top`: a positive number of settings is allowed; given {top!r}")
    response = resolve_response(study.spec, response)
    conditions = condition_table(study)
    frame = study_observations(study, response, "auto", conditions=conditions)
    names = study.spec.space.names
    frame = frame.dropna(subset=[response])[names + [response]].reset_index(drop=True)
    ranked = rank(study.spec.space.levels(), frame, response, top=top, pair=pair, diverse=diverse)
    return ranked, response, conditions


def export_settings(
    study,
    fmt: str,
    out: TextIO | str | Path | None = None,
    *,
    top: int = 20,
    response: str | None = None,
    pair: Any = "auto",
    seeds: int = 1,
    denoising_strength: bool = False,
    a1111_version: str = "1.9",
    diverse: bool = True,
) -> str | Path | list[Path]:
    """Rank, then write ``fmt``: to ``out`` (a stream or a path), else return the text.
    The ``study`` format always writes a file (default ``<study>_top<N>.toml`` beside it).
    ``a1111`` to a path writes one file per strength and schedule type when the settings
    need several (``<stem>_<tag><suffix>``) and returns their paths."""
    if fmt not in FORMATS:
        raise InputError(f"`format`: allowed: {', '.join(FORMATS)}; given {fmt!r}")
    ranked, response, conditions = _rank_study(study, response, top, pair, diverse)
    rows = setting_rows(study.spec, ranked)
    if fmt == "study":
        return _export_study(study, rows, out, top, seeds, conditions["base_seed"].max())
    buffer = io.StringIO()
    if fmt == "csv":
        write_settings_csv(rows, buffer)
    elif fmt == "json":
        write_json(rows, buffer, study.name, response)
    elif isinstance(out, (str, Path)):
        return _deliver_a1111(a1111_files(rows, study.spec, a1111_version, denoising_strength), Path(out))
    else:
        write_a1111(rows, buffer, denoising_strength, study.spec, a1111_version)
    return _deliver(buffer.getvalue(), out)


def _deliver_a1111(files: Mapping[str, list[str]], out: Path) -> Path | list[Path]:
    if len(files) == 1:
        return _deliver("\n".join(next(iter(files.values()))) + "\n", out)
    return [
        _deliver("\n".join(lines) + "\n", out.with_name(f"{out.stem}_{tag}{out.suffix}"))
        for tag, lines in files.items()
    ]


def _export_study(study, rows, out, top: int, seeds: int, last_base_seed: int) -> Path:
    spec = study.spec
    path = Path(out) if isinstance(out, (str, Path)) else Path(spec.base_dir) / f"{spec.name}_top{top}.toml"
    new_seeds = fresh_seeds(spec, last_base_seed, seeds)
    settings = [{n: row[n] for n in spec.space.names} for row in rows]
    data, header = confirmation_study(
        spec, settings, name=f"{spec.name}_top{top}", seeds=new_seeds, out_dir=path.parent
    )
    return write_study_toml(data, header, path)


def _deliver(text: str, out) -> str | Path:
    if out is None:
        return text
    if isinstance(out, (str, Path)):
        Path(out).write_text(text, encoding="utf-8")
        return Path(out)
    out.write(text)
    return text
