"""AUTOMATIC1111's readers, written from its documented formats, to check our files against.

- ``parameters`` text (infotext): prompt lines, a ``Negative prompt:`` line, and a last line
  of ``key: value`` pairs (a value JSON-quoted when it holds ``,`` ``:`` or a newline); the
  last line counts as settings only when it has at least 3 pairs; ``WxH`` values split into
  ``key-1``/``key-2``; absent ``Schedule type`` reads ``Automatic`` (1.9+), absent ``RNG``
  reads ``GPU``.
- "Prompts from file or textbox": each line ``shlex.split`` into ``--option value`` pairs
  from a fixed table; ``--sampler_name`` is looked up among the version's sampler names and
  aliases (lower case); an unknown option makes the whole line the prompt.
"""

import json
import re
import shlex

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")

OPTIONS = {  # prompts_from_file.py's prompt_tags (1.6 .. 1.10)
    "sd_model": str,
    "outpath_samples": str,
    "outpath_grids": str,
    "prompt_for_display": str,
    "prompt": str,
    "negative_prompt": str,
    "styles": str,
    "seed": int,
    "subseed_strength": float,
    "subseed": int,
    "seed_resize_from_h": int,
    "seed_resize_from_w": int,
    "sampler_index": int,
    "sampler_name": str,
    "batch_size": int,
    "n_iter": int,
    "steps": int,
    "cfg_scale": float,
    "width": int,
    "height": int,
    "restore_faces": str,
    "tiling": str,
    "do_not_save_samples": str,
    "do_not_save_grid": str,
}
_SAMPLERS_19 = [
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2S a",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
]
_KARRAS_18 = [
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Karras",
    "DPM++ 2M SDE Exponential",
    "DPM++ 3M SDE Karras",
]
SAMPLERS = {
    "1.9": {s.lower(): s for s in _SAMPLERS_19},
    "1.8": {s.lower(): s for s in _SAMPLERS_19 + _KARRAS_18 if s != "DDIM CFG++"},
}


def parse_generation_parameters(text: str) -> dict:
    res, prompt, negative, done = {}, [], [], False
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done, line = True, line[16:].strip()
        (negative if done else prompt).append(line)
    res["Prompt"], res["Negative prompt"] = "\n".join(prompt), "\n".join(negative)
    for key, value in RE_PARAM.findall(last):
        if value[0] == '"' and value[-1] == '"':
            value = json.loads(value)
        size = RE_SIZE.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    res.setdefault("Schedule type", "Automatic")
    res.setdefault("RNG", "GPU")
    return res


def prompts_from_file_line(line: str, version: str = "1.9") -> dict:
    """The options of one line, or AssertionError where A1111 would take the line as a prompt."""
    args, res, pos = shlex.split(line), {}, 0
    while pos < len(args):
        arg = args[pos]
        assert arg.startswith("--"), f'must start with "--": {arg}'
        assert pos + 1 < len(args), f"missing argument for command line option {arg}"
        tag = arg[2:]
        if tag in ("prompt", "negative_prompt"):
            pos += 1
            value = args[pos]
            pos += 1
            while pos < len(args) and not args[pos].startswith("--"):
                value, pos = value + " " + args[pos], pos + 1
            res[tag] = value
            continue
        assert tag in OPTIONS, f"unknown commandline option: {arg}"
        value = args[pos + 1]
        if tag == "sampler_name":
            value = SAMPLERS[version].get(value.lower())
            assert value is not None, f"sampler {args[pos + 1]!r} resolves to nothing on A1111 {version}"
        res[tag] = OPTIONS[tag](value)
        pos += 2
    return res
