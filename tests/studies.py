"""Study data shared by the tests: small, valid, and easy to break one field at a time."""

import copy

TEMPLATE = "portrait in the style of {style_a}, beach in the style of {style_b}, high quality"

BASE = {
    "name": "unit",
    "prompt": {"template": TEMPLATE, "negative": "low quality, BW"},
    "factors": {
        "style_a": ["Richard Dadd", "Hokusai", "Frank Cho"],
        "style_b": ["Rinko Kawauchi", "Todd Hido", "Claude Monet"],
        "strength": [0.35, 0.45, 0.75],
        "guidance": [6.0, 8.0, 10.0],
    },
    "design": {"kind": "L9"},
    "generation": {"mode": "txt2img", "steps": 4, "width": 32, "height": 32, "grid": [1, 2]},
}


def study_data(**changes):
    """A deep copy of BASE with sections updated: study_data(design={"kind": "full"}).

    ``factors`` given here replace the base factors; other sections are merged."""
    data = copy.deepcopy(BASE)
    for section, value in changes.items():
        if section != "factors" and isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section].update(value)
        else:
            data[section] = value
    return data


def patched(text: str, *changes: tuple[str, str]) -> str:
    """``text`` with each ``(old, new)`` replaced; fails loudly when ``old`` is not there,
    so a test cannot silently run the unpatched study."""
    for old, new in changes:
        assert old in text, f"the study text no longer contains {old!r}"
        text = text.replace(old, new)
    return text
