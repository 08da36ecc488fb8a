"""The stored orthogonal arrays: balance, shapes, and the published Taguchi layouts."""

import itertools
import re
from collections import Counter

import numpy as np
import pytest

from qeuopt.design.arrays import (
    array_levels,
    array_notation,
    list_arrays,
    orthogonal_array,
)
from qeuopt.errors import DesignError

ALL = list_arrays()


def digits(text: str) -> np.ndarray:
    return np.array([[int(ch) for ch in row] for row in text.split()])


def notation_levels(notation: str) -> tuple[int, list[int]]:
    """'L36(2^3 3^13)' -> (36, [2, 2, 2, 3, ...]); Taguchi lists the fewer-level columns first."""
    runs = int(re.match(r"L(\d+)\(", notation).group(1))
    groups = re.findall(r"(\d+)\^(\d+)", notation)
    return runs, [int(level) for level, count in groups for _ in range(int(count))]


@pytest.mark.parametrize("name", ALL)
def test_every_pair_of_columns_is_balanced(name):
    table = orthogonal_array(name)
    levels = array_levels(name)
    for col, k in enumerate(levels):
        counts = Counter(table[:, col])
        assert sorted(counts) == list(range(1, k + 1))
        assert len(set(counts.values())) == 1, f"{name} column {col + 1} is unbalanced"
    for i, j in itertools.combinations(range(table.shape[1]), 2):
        counts = Counter(zip(table[:, i], table[:, j]))
        assert len(counts) == levels[i] * levels[j], f"{name} columns {i + 1},{j + 1}"
        assert len(set(counts.values())) == 1, f"{name} columns {i + 1},{j + 1} are not balanced"


@pytest.mark.parametrize("name", ALL)
def test_shape_and_levels_match_the_notation(name):
    runs, levels = notation_levels(array_notation(name))
    table = orthogonal_array(name)
    assert table.shape == (runs, len(levels))
    assert array_levels(name) == tuple(levels)
    assert table.dtype.kind == "i" and table.min() == 1
    assert (table[0] == 1).all()  # Taguchi's first run sets every column to level 1


def test_list_is_smallest_first_with_the_required_arrays():
    assert ALL == ["L4", "L8", "L9", "L12", "L16", "L16b", "L18", "L25", "L27", "L32", "L36", "L36b", "L64"]
    runs = [len(orthogonal_array(name)) for name in ALL]
    assert runs == sorted(runs)


def test_names_are_case_insensitive_and_notation_is_accepted():
    assert np.array_equal(orthogonal_array("l16B"), orthogonal_array("L16(4^5)"))
    assert np.array_equal(orthogonal_array("L36(2^3 x 3^13)"), orthogonal_array("l36b"))
    assert np.array_equal(orthogonal_array("l18(2^1 3^7)"), orthogonal_array("L18"))


def test_a_fresh_copy_each_time():
    first = orthogonal_array("L9")
    first[:] = 0
    assert orthogonal_array("L9")[0, 0] == 1


def test_unknown_name_names_the_field_and_the_choices():
    with pytest.raises(DesignError) as err:
        orthogonal_array("L10")
    message = str(err.value)
    assert "`design.kind`" in message and "'L10'" in message
    assert all(name in message for name in ALL)


# Published layouts (Taguchi's standard tables, as printed by Taguchi, Phadke, Ross, NIST).
def test_l4_l8_l9_full_tables():
    assert np.array_equal(orthogonal_array("L4"), digits("111 122 212 221"))
    assert np.array_equal(
        orthogonal_array("L8"), digits("1111111 1112222 1221122 1222211 2121212 2122121 2211221 2212112")
    )
    assert np.array_equal(orthogonal_array("L9"), digits("1111 1222 1333 2123 2231 2312 3132 3213 3321"))


def test_l12_rows():
    table = orthogonal_array("L12")
    assert "".join(map(str, table[1])) == "11111222222"
    assert "".join(map(str, table[3])) == "12122122112"
    assert "".join(map(str, table[-1])) == "22112121221"


def test_l16_rows_and_columns():
    table = orthogonal_array("L16")
    assert "".join(map(str, table[1])) == "111111122222222"
    assert "".join(map(str, table[8])) == "212121212121212"
    assert "".join(map(str, table[-1])) == "221211221121221"
    assert "".join(map(str, table[:, 0])) == "1111111122222222"
    assert "".join(map(str, table[:, 7])) == "1212121212121212"


def test_l16b_is_the_published_gf4_table():
    published = digits(
        "11111 12222 13333 14444 21234 22143 23412 24321 31342 32431 33124 34213 41423 42314 43241 44132"
    )
    assert np.array_equal(orthogonal_array("L16b"), published)
    # independent check: columns a, b, a+b, 2a+b, 3a+b over GF(4) (addition is XOR)
    times = [[0, 0, 0, 0], [0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2]]
    rebuilt = [[a + 1, b + 1] + [(times[m][a] ^ b) + 1 for m in (1, 2, 3)] for a in range(4) for b in range(4)]
    assert np.array_equal(published, np.array(rebuilt))


def test_l18_is_the_mixed_form():
    table = orthogonal_array("L18")
    assert array_levels("L18") == (2,) + (3,) * 7
    assert "".join(map(str, table[3])) == "12112233"
    assert "".join(map(str, table[9])) == "21133221"
    assert "".join(map(str, table[-1])) == "23321231"


def test_l25_and_l27_rows():
    l25 = orthogonal_array("L25")
    assert ["".join(map(str, l25[i])) for i in (6, 10, 15, 20, 24)] == [
        "223451",
        "313524",
        "414253",
        "515432",
        "554321",
    ]
    l27 = orthogonal_array("L27")
    assert "".join(map(str, l27[1])) == "1111222222222"
    assert "".join(map(str, l27[9])) == "2123123123123"
    assert "".join(map(str, l27[13])) == "2231231312123"
    assert "".join(map(str, l27[-1])) == "3321321213132"


def test_two_level_columns_follow_the_triangular_table():
    for name in ("L8", "L16", "L32", "L64"):
        table = orthogonal_array(name)
        width = table.shape[1]
        for c1, c2 in itertools.combinations(range(1, width + 1), 2):
            interaction = (table[:, c1 - 1] != table[:, c2 - 1]) + 1
            assert np.array_equal(table[:, (c1 ^ c2) - 1], interaction)


def test_l32_and_l64_rows():
    l32 = orthogonal_array("L32")
    assert "".join(map(str, l32[1])) == "1" * 15 + "2" * 16
    assert "".join(map(str, l32[-1])) == "2212112211212212112122112212112"
    l64 = orthogonal_array("L64")
    assert "".join(map(str, l64[1])) == "1" * 31 + "2" * 32
    assert "".join(map(str, l64[:, 0])) == "1" * 32 + "2" * 32


def test_l36_rows_and_structure():
    table = orthogonal_array("L36")
    assert "".join(map(str, table[6])) == "11222111222" + "112312331223"
    assert "".join(map(str, table[-1])) == "22112121221" + "323121231123"
    # each block of three runs shares one L12 row and cycles the three-level columns
    assert np.array_equal(table[::3, :11], orthogonal_array("L12"))
    assert np.array_equal(table[:, :11], np.repeat(orthogonal_array("L12"), 3, axis=0))
    assert np.array_equal((table[1::3, 11:] - table[::3, 11:]) % 3, np.ones((12, 12), dtype=int))


def test_l36b_rows_and_structure():
    table = orthogonal_array("L36b")
    assert ["".join(map(str, table[i, :4])) for i in (0, 3, 6, 9, 12, 24)] == [
        "1111",
        "1221",
        "2121",
        "2211",
        "1112",
        "1113",
    ]
    assert "".join(map(str, table[6])) == "2121" + "112312331223"
    assert "".join(map(str, table[12])) == "1112" + "123132133212"
    assert np.array_equal(table[:, 4:], orthogonal_array("L36")[:, 11:])
