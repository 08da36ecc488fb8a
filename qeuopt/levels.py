"""Levels: when two levels are the same, and the full grid of settings. The one place.

A study keeps each level exactly as given, so ``1``, ``1.0`` and ``True`` are three
different levels (TOML, Optuna's storage and pandas would each blur them differently).
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from qeuopt.errors import InputError


def level_key(value: Any) -> str:
    """A hashable identity that tells 1, 1.0 and True apart."""
    return repr(plain(value))


def same_level(a: Any, b: Any) -> bool:
    """Equal values of the same kind (a bool never equals 1, nor 1 True)."""
    a, b = plain(a), plain(b)
    return a is b or (a == b and isinstance(a, bool) == isinstance(b, bool))


def unique_levels(values: Iterable[Any]) -> list[Any]:
    """Distinct values in first-appearance order, by :func:`level_key`."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(level_key(value), value)
    return list(seen.values())


def duplicate_levels(values: Sequence[Any]) -> list[Any]:
    """The values that appear more than once, by :func:`level_key`."""
    counts: dict[str, int] = {}
    for value in values:
        counts[level_key(value)] = counts.get(level_key(value), 0) + 1
    return [v for v in unique_levels(values) if counts[level_key(v)] > 1]


def find_level(name: str, levels: Sequence[Any], value: Any) -> Any:
    """The level object in ``levels`` that is ``value`` (storage and pandas round-trip
    values into other types); :class:`InputError` naming the factor when none is."""
    for level in levels:
        if same_level(level, value):
            return level
    for level in levels:  # a number suggested on a step grid may come back a hair off
        if _is_number(level) and _is_number(value) and math.isclose(level, plain(value), rel_tol=1e-9):
            return level
    raise InputError(f"`{name}`: allowed levels {list(levels)}; given {plain(value)!r}")


def _is_number(value: Any) -> bool:
    value = plain(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    """numpy scalars as Python values, NaN as None: what CSV, JSON and TOML can hold."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def grid_size(levels: Mapping[str, Sequence]) -> int:
    size = 1
    for values in levels.values():
        size *= len(values)
    return size


def grid_rows(levels: Mapping[str, Sequence]) -> Iterator[dict[str, Any]]:
    """Every combination of levels as a dict, the last factor varying fastest."""
    for combo in itertools.product(*levels.values()):
        yield dict(zip(levels, combo))


def full_grid(levels: Mapping[str, Sequence], max_candidates: int = 200_000, random_state: int = 0):
    """Every combination of levels as a DataFrame in grid order; a uniform sample without
    replacement (still in grid order) when there are more than ``max_candidates``.

    Columns hold the level objects exactly as given (object dtype: ints stay ``int``).
    """
    import numpy as np

    names, values = check_levels(levels)
    sizes = [len(v) for v in values]
    total = grid_size(levels)
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, (int, np.integer)) or max_candidates < 1:
        raise InputError(f"`max_candidates`: an int >= 1 is allowed; given {max_candidates!r}")
    if total <= max_candidates:
        flat = np.arange(total, dtype=np.int64)
    elif total < 2**62:
        flat = np.sort(np.random.default_rng(random_state).choice(total, max_candidates, replace=False))
    else:
        raise InputError(
            f"`levels`: the grid has {total} settings, too many to sample from; use fewer factors or levels"
        )
    return _decode(flat, names, values, sizes)


def check_levels(levels: Mapping[str, Sequence]) -> tuple[list[str], list[list]]:
    if not isinstance(levels, Mapping) or not levels:
        raise InputError(f"`levels`: a mapping factor -> list of levels is allowed; given {levels!r}")
    empty = [name for name, values in levels.items() if len(values) == 0]
    if empty:
        raise InputError(f"`levels`: every factor needs at least one level; {empty} have none")
    return list(levels), [list(v) for v in levels.values()]


def _decode(flat, names: list[str], values: list[list], sizes: list[int]):
    import numpy as np
    import pandas as pd

    columns, rest = {}, flat
    for name, options, size in zip(reversed(names), reversed(values), reversed(sizes)):
        codes, rest = rest % size, rest // size  # the last factor varies fastest
        column = np.empty(len(flat), dtype=object)
        column[:] = [options[c] for c in codes.tolist()]
        columns[name] = column
    # object dtype keeps the level objects: pandas would turn ints into int64, str into its str dtype
    return pd.DataFrame({name: columns[name] for name in names}, dtype=object)
