"""Taguchi designs: put factors on orthogonal-array columns.

:func:`assign` gives each factor with two or more levels its own array column with at
least as many levels. A factor with k levels in a column with more levels uses the
standard dummy-level rule: column level j means factor level ((j - 1) % k) + 1, so a
two-level factor in a three-level column repeats its level 1 where the column says 3.
Orthogonality survives (proportional frequencies); the repeated level is just tested
more often. A one-level factor is a constant and takes no column. The analysis of the
scores lives in :mod:`qeuopt.analysis.effects`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qeuopt.design.arrays import (
    ARRAY_FIELD,
    array_levels,
    array_notation,
    canonical_name,
    list_arrays,
    orthogonal_array,
)
from qeuopt.errors import DesignError


# ----------------------------------------------------------------------------- assignment
@dataclass(frozen=True)
class Assignment:
    """Which array column each factor uses (0-based); one-level factors use none."""

    array: str
    columns: dict[str, int]
    level_counts: dict[str, int] = field(default_factory=dict)

    def indices(self) -> list[dict[str, int]]:
        """Per array row, the 1-based level number of each column factor (dummy rule applied)."""
        return self._indices(self.level_counts)

    def rows(self, levels: Mapping[str, Sequence]) -> list[dict[str, Any]]:
        """One condition per array row: factor -> the level object given (not a copy)."""
        self._check(levels)
        numbers = self._indices({f: len(levels[f]) for f in self.columns})
        return [
            {f: values[index[f] - 1] if f in index else values[0] for f, values in levels.items()} for index in numbers
        ]

    def _indices(self, counts: Mapping[str, int]) -> list[dict[str, int]]:
        column_levels = array_levels(self.array)
        k = {f: counts.get(f) or column_levels[c] for f, c in self.columns.items()}
        return [
            {f: (int(run[c]) - 1) % k[f] + 1 for f, c in self.columns.items()} for run in orthogonal_array(self.array)
        ]

    def _check(self, levels: Mapping[str, Sequence]) -> None:
        column_levels = array_levels(self.array)
        for name in self.columns:
            if name not in levels:
                raise DesignError(f"`factors.{name}`: assigned to {self.array} but no levels were given")
        for name, values in levels.items():
            if name not in self.columns:
                if len(values) != 1:
                    raise DesignError(
                        f"`factors.{name}`: has no column in {self.array}, so exactly 1 level "
                        f"is allowed; given {len(values)}"
                    )
                continue
            most, want = column_levels[self.columns[name]], self.level_counts.get(name)
            if (want is not None and len(values) != want) or not 1 <= len(values) <= most:
                expected = want if want is not None else f"1 to {most}"
                raise DesignError(
                    f"`factors.{name}`: its column in {self.array} is set up for {expected} levels; given {len(values)}"
                )


def assign(level_counts: Mapping[str, int], array: str = "auto") -> Assignment:
    """Put factors (name -> number of levels) on the columns of an array.

    ``array="auto"`` takes the array with the fewest runs that holds every factor; ties go to
    the one needing fewer dummy levels, then to the order of :func:`list_arrays`. Columns are
    picked deterministically: factors with most levels first, each to the free column with
    the fewest sufficient levels; within columns of one level count the given factor order
    is kept.
    """
    counts = _check_counts(level_counts)
    needs = {f: k for f, k in counts.items() if k > 1}
    if not needs:
        raise DesignError(
            f"`{ARRAY_FIELD}`: every factor has one level, so there is nothing to "
            f"vary; use a full factorial (one condition)"
        )
    if isinstance(array, str) and array.strip().lower() == "auto":
        return _auto(needs, counts)
    name = canonical_name(array)
    columns = _fit(needs, array_levels(name))
    if columns is None:
        raise DesignError(_no_fit_message(name, needs))
    return Assignment(name, columns, counts)


def _check_counts(level_counts: Mapping[str, int]) -> dict[str, int]:
    for name, k in level_counts.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DesignError(f"`factors.{name}`: at least one level is needed; given {k!r}")
    return {name: int(k) for name, k in level_counts.items()}


def _fit(needs: dict[str, int], column_levels: tuple[int, ...]) -> dict[str, int] | None:
    # Most levels first, best fit: optimal here, as a column that suits k levels suits fewer.
    free, chosen = set(range(len(column_levels))), {}
    for name in sorted(needs, key=lambda f: -needs[f]):
        candidates = [c for c in free if column_levels[c] >= needs[name]]
        if not candidates:
            return None
        chosen[name] = min(candidates, key=lambda c: (column_levels[c], c))
        free.remove(chosen[name])
    return _keep_factor_order(chosen, column_levels, list(needs))


def _keep_factor_order(chosen: dict[str, int], column_levels, order: list[str]) -> dict[str, int]:
    # Among columns of equal level count, hand them out in the factors' given order.
    result: dict[str, int] = {}
    for level in sorted({column_levels[c] for c in chosen.values()}):
        names = [f for f in order if column_levels[chosen[f]] == level]
        result.update(zip(names, sorted(chosen[f] for f in names)))
    return {f: result[f] for f in order}


def _dummy_levels(needs: dict[str, int], columns: dict[str, int], column_levels) -> int:
    return sum(column_levels[c] - needs[f] for f, c in columns.items())


def _fitting_arrays(needs: dict[str, int]) -> list[tuple[int, int, int, str, dict[str, int]]]:
    found = []
    for order, name in enumerate(list_arrays()):
        levels = array_levels(name)
        columns = _fit(needs, levels)
        if columns is not None:
            runs = len(orthogonal_array(name))
            found.append((runs, _dummy_levels(needs, columns, levels), order, name, columns))
    return sorted(found, key=lambda item: item[:3])


def _auto(needs: dict[str, int], counts: dict[str, int]) -> Assignment:
    found = _fitting_arrays(needs)
    if not found:
        raise DesignError(_no_fit_message(None, needs))
    _, _, _, name, columns = found[0]
    return Assignment(name, columns, counts)


def _label(name: str) -> str:
    notation = array_notation(name)
    return notation if notation.startswith(name + "(") else f"{name} = {notation}"


def _no_fit_message(name: str | None, needs: dict[str, int]) -> str:
    arrays = [name] if name else list_arrays()
    most = max(max(array_levels(a)) for a in arrays)
    too_wide = [f"{f} with {k} levels" for f, k in needs.items() if k > most]
    if too_wide:
        where = _label(name) if name else "the stored arrays have"
        problem = f"{where}{' has' if name else ''} columns of at most {most} levels; given {', '.join(too_wide)}"
    elif name:
        problem = _shortage(name, needs)
    else:
        widest = max(list_arrays(), key=lambda a: len(array_levels(a)))
        problem = (
            f"no stored array holds these {len(needs)} factors; the widest is "
            f"{_label(widest)} with {len(array_levels(widest))} columns"
        )
    fitting = [item[3] for item in _fitting_arrays(needs)][:3]
    advice = f"Use {', '.join(fitting)}, or `auto`" if fitting else "Use fewer factors or fewer levels"
    return f"`{ARRAY_FIELD}`: {problem}. {advice}."


def _shortage(name: str, needs: dict[str, int]) -> str:
    # Hall's condition for this threshold structure: some level t has too few wide columns.
    column_levels = array_levels(name)
    for t in sorted(set(needs.values()), reverse=True):
        wanted = [f"{f}: {k}" for f, k in needs.items() if k >= t]
        have = sum(level >= t for level in column_levels)
        if len(wanted) > have:
            return (
                f"{_label(name)} has {have} columns with >={t} levels; the factors need "
                f"{len(wanted)} columns with >={t} levels ({', '.join(wanted)})"
            )
    return f"{_label(name)} cannot hold the factors"  # unreachable: Hall's condition is sufficient
