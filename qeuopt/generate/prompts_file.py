"""Files for AUTOMATIC1111's "Prompts from file or textbox" script that run as qeuopt ran.

The script splits each line with :func:`shlex.split` and reads ``--option value`` pairs
(``prompt negative_prompt steps cfg_scale seed width height sampler_name batch_size n_iter
...``); a line with an unknown option is not parsed at all (the whole line becomes the
prompt). It has no option for img2img strength, nor, from 1.9 on, for the schedule type
(sampler and schedule are separate there, and ``--sampler_name 'DPM++ 2M Karras'`` no
longer resolves), nor for the noise source. So the settings a line cannot carry are kept
by splitting: one file per img2img strength and schedule type, whose first line, a ``#``
comment, names the A1111 version and what to set in the UI for that file. A1111's script
has no comment syntax: it would run that line as a prompt, so delete it before running.

Each line is one condition: ``--seed`` is its first seed, ``--batch_size 1 --n_iter N`` makes
its N images, seed, seed+1, ... as qeuopt made them. Lines that come out identical are
written once.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qeuopt.config.schedulers import DEFAULT, a1111_sampler, legacy_sampler_name, scheduler_for_class

VERSIONS = ("1.9", "1.8")  # 1.9: A1111 1.9 and later; 1.8: before 1.9 (combined sampler names)


def model_scheduler(model: str, base_dir: str = ".") -> str | None:
    """Our name for the scheduler a model ships (``default``), read from its files offline."""
    from qeuopt.generate.models import resolve_model

    ref = resolve_model(model)
    config = Path(base_dir) / Path(ref).expanduser() / "scheduler" / "scheduler_config.json"
    if not config.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(ref, "scheduler/scheduler_config.json")
        except Exception:  # not a hub id, or no cache
            cached = None
        config = Path(cached) if isinstance(cached, str) else None
    if config is None:
        return None
    data = json.loads(config.read_text(encoding="utf-8"))
    return scheduler_for_class(data.get("_class_name", ""), data)


def spec_notes(spec) -> tuple[str, ...]:
    """What every header adds for a study: its LoRA files, a prompt syntax A1111 does not read."""
    notes = []
    if spec.loras:
        notes.append(
            "LoRA files to put in A1111's models/Lora under these names: "
            + ", ".join(f"{name} = {path}" for name, path in spec.loras.items())
        )
    if spec.prompt.syntax != "a1111":
        notes.append(f"the prompts are in {spec.prompt.syntax} syntax, which A1111 reads as its own")
    return tuple(notes)


def sampler_and_schedule(scheduler: str, version: str) -> tuple[str, str]:
    """(``--sampler_name`` value, schedule type to set in the UI or "" when the name says it)."""
    if scheduler == DEFAULT or not scheduler:
        return "", ""
    if version == "1.8":
        return legacy_sampler_name(scheduler), ""
    return a1111_sampler(scheduler)


def one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


def job_line(row: Mapping[str, Any], sampler: str, denoising_strength: bool = False) -> str:
    options = [
        ("prompt", one_line(row["prompt"])),
        ("negative_prompt", one_line(row["negative_prompt"])),
        ("steps", row["steps"]),
        ("cfg_scale", row["guidance"]),
        ("seed", row["seed"]),
        ("width", row["width"]),
        ("height", row["height"]),
    ]
    if sampler:
        options.append(("sampler_name", sampler))
    options += [("batch_size", 1), ("n_iter", row.get("images", 1))]
    if denoising_strength and row.get("mode") == "img2img":  # not upstream: for forks that take it
        options.append(("denoising_strength", row["strength"]))
    return " ".join(f"--{name} {shlex.quote(str(value))}" for name, value in options if str(value) != "")


def _header(
    version: str, row: Mapping[str, Any], schedule: str, dropped: int, sampler: str, notes: tuple[str, ...] = ()
) -> str:
    tab = "img2img" if row.get("mode") == "img2img" else "txt2img"
    settings = [
        f'A1111 {version}{"+" if version == "1.9" else " and earlier"} "Prompts from file or textbox", {tab} tab',
        "Settings > Random number generator source: CPU",
    ]
    if tab == "img2img":
        settings += [f"Denoising strength: {row['strength']}", f"init image: {row.get('init_image', '')}"]
    if schedule:
        settings.append(f"Schedule type: {schedule}")
    if not sampler:
        settings.append("Sampler: the checkpoint's own scheduler, not known offline (scheduler `default`)")
    settings.append(f"checkpoint: {row.get('model', '')}")
    settings += notes
    if dropped:
        settings.append(f"{dropped} setting(s) rendered a line already written, kept once")
    return "# " + "; ".join(settings) + "; delete this line before running (A1111 runs every line)"


def group_rows(
    rows: Iterable[Mapping[str, Any]],
    version: str = "1.9",
    denoising_strength: bool = False,
    default_scheduler: str | None = None,
    notes: tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """{file tag: lines}: one group per img2img strength and schedule type, header first;
    ``notes`` are added to every header (LoRA files, a prompt syntax A1111 does not read)."""
    if version not in VERSIONS:
        raise ValueError(f"`version`: allowed: {', '.join(VERSIONS)}; given {version!r}")
    groups: dict[tuple, list] = defaultdict(list)
    for row in rows:
        scheduler = row.get("scheduler", DEFAULT)
        if scheduler == DEFAULT and default_scheduler:
            scheduler = default_scheduler
        sampler, schedule = sampler_and_schedule(scheduler, version)
        strength = row["strength"] if row.get("mode") == "img2img" else None
        groups[(strength, schedule)].append((row, job_line(row, sampler, denoising_strength), sampler))
    files = {}
    for (strength, schedule), entries in groups.items():
        lines = list(dict.fromkeys(line for _, line, _ in entries))
        tag = (
            "_".join(
                part
                for part in (f"strength{strength}" if strength is not None else "", schedule.replace(" ", "").lower())
                if part
            )
            or "all"
        )
        first, _, sampler = entries[0]
        files[tag] = [_header(version, first, schedule, len(entries) - len(lines), sampler, notes), *lines]
    return files
