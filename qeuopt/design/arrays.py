"""Published Taguchi orthogonal arrays, 1-based, in Taguchi's standard column order.

Naming: the usual form of an array takes the bare name (``L4``, ``L9``, ``L36``); a
second form with the same number of runs gets the suffix ``b`` (``L16b``, ``L36b``), as
NIST names its L16B file. Each array also answers to its level notation, e.g.
``L16(4^5)`` or ``L36(2^3 3^13)``; names are matched ignoring case, spaces, commas and
``x``/``×`` separators. :func:`list_arrays` returns the short names, smallest first.

==========  ===================  ==============================================
name        notation             how it is stored
==========  ===================  ==============================================
L4          L4(2^3)              GF(2) construction (below)
L8          L8(2^7)              GF(2) construction
L9          L9(3^4)              GF(3) construction
L12         L12(2^11)            literal (Plackett–Burman, Taguchi's row order)
L16         L16(2^15)            GF(2) construction
L16b        L16(4^5)             literal (GF(4) array)
L18         L18(2^1 3^7)         literal (mixed form, not the 6^1 3^6 merge)
L25         L25(5^6)             GF(5) construction
L27         L27(3^13)            GF(3) construction
L32         L32(2^31)            GF(2) construction
L36         L36(2^11 3^12)       literal (NIST dataplot L36.DAT)
L36b        L36(2^3 3^13)        built from L36 (below)
L64         L64(2^63)            GF(2) construction
==========  ===================  ==============================================

Two-level arrays L(2^m): run r has bits b1..bm (b1 most significant); column c (1-based)
is the sum mod 2 of the bits b_i for which bit i-1 of c is set. So columns 1, 2, 4, 8...
are the basic columns and column c1 XOR c2 holds their interaction, which is exactly
Taguchi's triangular table. Prime-level arrays: run r has base-p digits (a, b[, c]), and
each column is a fixed linear combination of them mod p (``_PRIME_COLUMNS``).

L36b keeps the twelve three-level columns of L36 (its columns 12-23) as columns 5-16.
In L36 every block of three rows shares one L12 row and cycles the three-level levels,
so any column that is constant on those blocks stays orthogonal to them. The blocks
k = 0..11 get the L4 row k mod 4 (columns 1-3) and the level k // 4 + 1 (column 4).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from qeuopt.errors import DesignError

ARRAY_FIELD = "design.kind"  # the study field named in error messages

_NOTATION = {
    "L4": "L4(2^3)",
    "L8": "L8(2^7)",
    "L9": "L9(3^4)",
    "L12": "L12(2^11)",
    "L16": "L16(2^15)",
    "L16b": "L16(4^5)",
    "L18": "L18(2^1 3^7)",
    "L25": "L25(5^6)",
    "L27": "L27(3^13)",
    "L32": "L32(2^31)",
    "L36": "L36(2^11 3^12)",
    "L36b": "L36(2^3 3^13)",
    "L64": "L64(2^63)",
}

# Coefficients of the run digits (most significant first) for each column, mod p.
_PRIME_COLUMNS = {
    "L9": (3, [(1, 0), (0, 1), (1, 1), (2, 1)]),
    "L25": (5, [(1, 0), (0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]),
    "L27": (
        3,
        [
            (1, 0, 0),
            (0, 1, 0),
            (1, 1, 0),
            (2, 1, 0),
            (0, 0, 1),
            (1, 0, 1),
            (2, 0, 1),
            (0, 1, 1),
            (1, 1, 1),
            (2, 1, 1),
            (0, 2, 1),
            (1, 2, 1),
            (2, 2, 1),
        ],
    ),
}

_TWO_LEVEL_BITS = {"L4": 2, "L8": 3, "L16": 4, "L32": 5, "L64": 6}

# Literal tables: one string of level digits per run.
_LITERAL = {
    "L12": """
        11111111111 11111222222 11222111222 12122122112 12212212121 12221221211
        21221122121 21212221112 21122212211 22211112212 22121211122 22112121221""",
    "L16b": """
        11111 12222 13333 14444 21234 22143 23412 24321
        31342 32431 33124 34213 41423 42314 43241 44132""",
    "L18": """
        11111111 11222222 11333333 12112233 12223311 12331122 13121323 13232131 13313212
        21133221 21211332 21322113 22123132 22231213 22312321 23132312 23213123 23321231""",
    # two-level columns 1-11 | three-level columns 12-23
    "L36": """
        11111111111111111111111 11111111111222222222222 11111111111333333333333
        11111222222111122223333 11111222222222233331111 11111222222333311112222
        11222111222112312331223 11222111222223123112331 11222111222331231223112
        12122122112113213232132 12122122112221321313213 12122122112332132121321
        12212212121123132133212 12212212121231213211323 12212212121312321322131
        12221221211123211323321 12221221211231322131132 12221221211312133212213
        21221122121121333122123 21221122121232111233231 21221122121313222311312
        21212221112122331211332 21212221112233112322113 21212221112311223133221
        21122212211132123313122 21122212211213231121233 21122212211321312232311
        22211112212132221132313 22211112212213332213121 22211112212321113321232
        22121211122133323221211 22121211122211131332322 22121211122322212113133
        22112121221131232312231 22112121221212313123312 22112121221323121231123""",
}


def _normalize(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " ,x×*\t")


_ALIASES = {_normalize(key): key for key in _NOTATION} | {
    _normalize(notation): key for key, notation in _NOTATION.items()
}


def canonical_name(name: str) -> str:
    """The short name of an array given by short name or notation, any case."""
    key = _ALIASES.get(_normalize(name)) if isinstance(name, str) else None
    if key is None:
        raise DesignError(
            f"`{ARRAY_FIELD}`: unknown orthogonal array {name!r}; allowed: "
            f"{', '.join(list_arrays())} (or a notation such as L16(4^5)), or `auto`"
        )
    return key


def _from_digits(text: str) -> np.ndarray:
    return np.array([[int(ch) for ch in row] for row in text.split()], dtype=int)


def _two_level(bits: int) -> np.ndarray:
    runs = np.arange(2**bits)
    # run_bits[:, i] is b_{i+1}; b1 is the most significant bit of the run index
    run_bits = (runs[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    columns = np.arange(1, 2**bits)
    column_bits = (columns[:, None] >> np.arange(bits)) & 1
    return (run_bits @ column_bits.T) % 2 + 1


def _prime_level(p: int, coefficients: list[tuple[int, ...]]) -> np.ndarray:
    digits = len(coefficients[0])
    runs = np.arange(p**digits)
    run_digits = (runs[:, None] // p ** np.arange(digits - 1, -1, -1)) % p
    return (run_digits @ np.array(coefficients).T) % p + 1


def _l36b() -> np.ndarray:
    l36, l4 = _build("L36"), _build("L4")
    blocks = np.arange(36) // 3
    two_level = l4[blocks % 4]
    block_level = (blocks // 4 + 1)[:, None]
    return np.hstack([two_level, block_level, l36[:, 11:]])


@cache
def _build(name: str) -> np.ndarray:
    if name in _TWO_LEVEL_BITS:
        table = _two_level(_TWO_LEVEL_BITS[name])
    elif name in _PRIME_COLUMNS:
        table = _prime_level(*_PRIME_COLUMNS[name])
    elif name == "L36b":
        table = _l36b()
    else:
        table = _from_digits(_LITERAL[name])
    table.flags.writeable = False  # the cache is shared; callers get copies
    return table


def orthogonal_array(name: str) -> np.ndarray:
    """A fresh copy of a published array: rows are runs, columns factors, levels 1-based."""
    return _build(canonical_name(name)).copy()


def array_levels(name: str) -> tuple[int, ...]:
    """The number of levels of each column of an array."""
    return tuple(int(n) for n in _build(canonical_name(name)).max(axis=0))


def array_notation(name: str) -> str:
    """The level notation of an array, e.g. ``L36(2^3 3^13)`` for ``L36b``."""
    return _NOTATION[canonical_name(name)]


def list_arrays() -> list[str]:
    """The short names of the stored arrays, fewest runs first."""
    return sorted(_NOTATION, key=lambda key: (int(key[1:].rstrip("b")), key))
