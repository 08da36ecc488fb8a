"""Balanced designs for any budget: the largest published orthogonal array that fits,
else a nearly orthogonal design built by column exchange. The first round of
:func:`qeuopt.optimize` reads every main effect from one of these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from qeuopt.design.arrays import list_arrays, orthogonal_array
from qeuopt.design.assign import assign
from qeuopt.errors import DesignError
from qeuopt.levels import find_level

EXCHANGE_SWEEPS = 30  # column-exchange passes when no published array fits


def spread_rows(levels: Mapping[str, Sequence], runs: int, rng: np.random.Generator) -> list[dict]:
    """At most ``runs`` conditions spreading every factor's levels evenly and independently.

    The published array with the most runs (<= ``runs``) that holds the factors, level
    labels shuffled per factor; else exactly ``runs`` rows of a balanced design whose
    columns are exchanged towards orthogonality (:func:`balanced_design`).
    """
    counts = {name: len(values) for name, values in levels.items()}
    fitting = []
    for array in list_arrays():
        try:
            fitting.append((len(orthogonal_array(array)), assign(counts, array)))
        except DesignError:
            continue
    fitting = [item for item in fitting if item[0] <= runs]
    if fitting:
        assignment = max(fitting, key=lambda item: item[0])[1]
        shuffled = {name: list(rng.permutation(np.array(values, dtype=object))) for name, values in levels.items()}
        rows = assignment.rows(shuffled)
    else:
        codes = balanced_design([len(v) for v in levels.values()], runs, rng)
        rows = [{name: levels[name][c] for name, c in zip(levels, row)} for row in codes.tolist()]
    return [{name: find_level(name, levels[name], row[name]) for name in levels} for row in rows]


def balanced_design(
    sizes: Sequence[int], runs: int, rng: np.random.Generator, sweeps: int = EXCHANGE_SWEEPS
) -> np.ndarray:
    """(runs, factors) level codes: each column uses its levels equally often (+-1), and
    swaps within columns drive every pair of columns towards proportional frequencies,
    the condition under which main effects are estimated independently (orthogonality).

    ``deviation`` = one-hot cross products minus what independent columns would give;
    only blocks between different factors change, and a swap of two rows in column f
    moves two of its rows by ``d`` = the difference of those rows elsewhere.
    """
    codes = np.stack([np.resize(rng.permutation(k), runs)[rng.permutation(runs)] for k in sizes], axis=1)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    onehot = np.zeros((runs, int(sum(sizes))))
    onehot[np.arange(runs)[:, None], offsets + codes] = 1.0
    frequency = onehot.mean(axis=0)
    deviation = onehot.T @ onehot - runs * np.outer(frequency, frequency)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    for _ in range(sweeps):
        for factor in range(len(sizes)):
            outside = owner != factor
            for r1, r2 in rng.integers(runs, size=(runs, 2)).tolist():
                a1, a2 = offsets[factor] + codes[r1, factor], offsets[factor] + codes[r2, factor]
                if a1 == a2:
                    continue
                d = (onehot[r2] - onehot[r1]) * outside
                if d @ (deviation[a1] - deviation[a2]) + d @ d <= 0:  # sum of squares does not grow
                    for row, col, sign in ((a1, a1, 1.0), (a2, a2, -1.0)):
                        deviation[row] += sign * d
                        deviation[:, col] += sign * d
                    onehot[[r1, r2], a1], onehot[[r1, r2], a2] = onehot[[r2, r1], a1], onehot[[r2, r1], a2]
                    codes[[r1, r2], factor] = codes[[r2, r1], factor]
    return codes
