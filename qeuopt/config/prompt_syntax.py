"""The prompt language of AUTOMATIC1111 (A1111), read as A1111 reads it; no heavy imports.

A prompt goes through three steps, in A1111's order:

1. **LoRA tags** ``<lora:name:weight>`` are taken out (:func:`split_loras`); they choose
   adapters, they are not text.
2. **Prompt editing** ``[from:to:when]``, ``[to:when]``, ``[from::when]`` makes one text per
   stretch of steps (:func:`schedule`). ``when`` with a decimal point is a fraction of the
   steps, else a step number (A1111 1.6+); the switch happens after step ``when``.
3. **Attention** ``(x)`` x1.1, ``((x))`` x1.21, ``[x]`` /1.1, ``(x:1.3)`` sets 1.3, ``\\(``
   is a literal parenthesis, ``BREAK`` ends a 75-token chunk (:func:`parse_attention`, the
   rules of A1111's ``parse_prompt_attention``).

:func:`readable` gives the text a person reads (weights, editing, BREAK and tags removed),
which is what CLIP scores against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qeuopt.errors import PromptSyntaxError

SYNTAXES = ("a1111", "compel", "plain")
BREAK = "BREAK"

_ATTENTION = re.compile(
    r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
""",
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_LORA = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?((?::[^>]*)?)>")
_NUMBER = re.compile(r"\s*([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*")


# ------------------------------------------------------------------------------ LoRA tags
@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float
    text: str  # the tag as written


def find_loras(prompt: str) -> list[LoraTag]:
    """Every ``<lora:name[:weight]>`` tag; a weight that is no number is reported as NaN."""
    tags = []
    for match in _LORA.finditer(prompt):
        name, weight, extra = match.group(1).strip(), match.group(2), match.group(3)
        try:
            value = 1.0 if weight is None or not weight.strip() else float(weight)
        except ValueError:
            value = float("nan")
        if extra:  # A1111's te/unet multipliers and named arguments are not supported
            value = float("nan")
        tags.append(LoraTag(name, value, match.group(0)))
    return tags


def split_loras(prompt: str) -> tuple[str, dict[str, float]]:
    """The prompt without LoRA tags, and {name: weight} (a repeated name: the weights add,
    as A1111 applies a network once per tag)."""
    weights: dict[str, float] = {}
    for tag in find_loras(prompt):
        weights[tag.name] = weights.get(tag.name, 0.0) + tag.weight
    return _LORA.sub("", prompt), weights


# ------------------------------------------------------------------------- prompt editing
@dataclass(frozen=True)
class _Edit:
    before: tuple  # nodes used up to and including step `when`
    after: tuple
    when: str  # as written: "0.5" is a fraction, "10" a step


@dataclass(frozen=True)
class _Literal:
    open: str
    body: tuple
    close: str


def _parse(text: str, pos: int = 0, stops: str = "") -> tuple[tuple, int]:
    """Nodes up to the first unescaped character of ``stops`` at this depth."""
    nodes, plain = [], []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            plain.append(text[pos : pos + 2])
            pos += 2
            continue
        if char in stops:
            break
        if char in "([":
            if plain:
                nodes.append("".join(plain))
                plain = []
            node, pos = _parse_group(text, pos)
            nodes.append(node)
            continue
        plain.append(char)
        pos += 1
    if plain:
        nodes.append("".join(plain))
    return tuple(nodes), pos


def _parse_group(text: str, pos: int):
    if text[pos] == "(":
        body, end = _parse(text, pos + 1, ")")
        closed = end < len(text)
        return _Literal("(", body, ")" if closed else ""), end + closed
    parts, seps, end = [], [], pos + 1
    while True:
        body, end = _parse(text, end, ":|]")
        parts.append(body)
        if end >= len(text):
            return _Literal("[", _join(parts, seps), ""), end
        if text[end] == "]":
            break
        seps.append(text[end])
        end += 1
    if "|" in seps:
        raise PromptSyntaxError(
            f"alternation {text[pos : end + 1]!r} (A1111 swaps the words every step) is not "
            "supported; write one of the words, or make them levels of a factor"
        )
    number = _NUMBER.fullmatch(_flat(parts[-1])) if len(parts) in (2, 3) else None
    if number:
        before = parts[0] if len(parts) == 3 else ()
        return _Edit(before, parts[-2], number.group(1)), end + 1
    return _Literal("[", _join(parts, seps), "]"), end + 1


def _join(parts: list[tuple], seps: list[str]) -> tuple:
    nodes = list(parts[0])
    for sep, part in zip(seps, parts[1:]):
        nodes += [sep, *part]
    return tuple(nodes)


def _flat(nodes: tuple) -> str:
    return "".join(n if isinstance(n, str) else "\x00" for n in nodes)


def _switch_step(when: str, steps: int) -> int:
    value = float(when)
    return min(steps, int(value * steps if "." in when else value))


def _render(nodes: tuple, step: int | None, steps: int) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Literal):
            out.append(node.open + _render(node.body, step, steps) + node.close)
        else:
            use_before = step is not None and step <= _switch_step(node.when, steps)
            out.append(_render(node.before if use_before else node.after, step, steps))
    return "".join(out)


def _switches(nodes: tuple, steps: int) -> set[int]:
    found = set()
    for node in nodes:
        if isinstance(node, _Literal):
            found |= _switches(node.body, steps)
        elif isinstance(node, _Edit):
            step = _switch_step(node.when, steps)
            if step >= 1:
                found.add(step)
            found |= _switches(node.before, steps) | _switches(node.after, steps)
    return found


def schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """A1111's prompt schedule: ``[(end_step, text), ...]``; sampler step ``i`` (0-based)
    uses the first entry with ``i <= end_step``. One entry when nothing is edited."""
    nodes, _ = _parse(prompt)
    ends = sorted(_switches(nodes, steps) | {steps})
    result: list[tuple[int, str]] = []
    for end in ends:
        text = _render(nodes, end, steps)
        if result and result[-1][1] == text:
            result[-1] = (end, text)
        else:
            result.append((end, text))
    return result


def text_at(entries: list[tuple[int, str]], step: int) -> str:
    """The text of a schedule for sampler step ``step`` (0-based)."""
    return next((text for end, text in entries if step <= end), entries[-1][1])


# ------------------------------------------------------------------------------ attention
def parse_attention(text: str) -> list[tuple[str, float]]:
    """``[(text, weight), ...]`` by A1111's rules; ``("BREAK", -1)`` marks a BREAK."""
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for item in res[start:]:
            if item[1] >= 0:
                item[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(res))
        elif token == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            multiply(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            multiply(round_open.pop(), 1.1)
        elif token == "]" and square_open:
            multiply(square_open.pop(), 1 / 1.1)
        else:
            for k, part in enumerate(_BREAK.split(token)):
                if k:
                    res.append([BREAK, -1.0])
                res.append([part, 1.0])
    for start in round_open:
        multiply(start, 1.1)
    for start in square_open:
        multiply(start, 1 / 1.1)
    merged: list[list] = []
    for item in res or [["", 1.0]]:
        if merged and merged[-1][1] == item[1] and item[1] >= 0:
            merged[-1][0] += item[0]
        else:
            merged.append(list(item))
    return [(t, w) for t, w in merged]


def chunks(text: str) -> list[list[tuple[str, float]]]:
    """Weighted fragments, one list per BREAK-separated part (empty fragments dropped)."""
    parts: list[list[tuple[str, float]]] = [[]]
    for fragment, weight in parse_attention(text):
        if weight < 0:
            parts.append([])
        elif fragment:
            parts[-1].append((fragment, weight))
    return parts


def readable(prompt: str, syntax: str = "a1111") -> str:
    """What a person reads: LoRA tags, editing (the final text), weights and BREAK removed."""
    if syntax != "a1111":
        return prompt
    text, _ = split_loras(prompt)
    nodes, _ = _parse(text)
    text = _render(nodes, None, 1)
    words = " ".join("".join(fragment for fragment, _ in part) for part in chunks(text))
    words = re.sub(r"\s+", " ", re.sub(r"\s+([,.;:!?])", r"\1", words))
    return re.sub(r"(,\s*)+,", ",", words).strip(" ,")
