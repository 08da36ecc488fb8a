"""Assignment of factors to arrays, SN ratios, and the Taguchi analysis on hand-checkable data."""

import io
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from qeuopt.analysis.effects import analyze, sn_ratio
from qeuopt.analysis.figures import effects_figure
from qeuopt.design.arrays import orthogonal_array
from qeuopt.design.assign import Assignment, assign
from qeuopt.errors import DesignError, InputError, NoDataError

# ---------------------------------------------------------------------------- assignment


def twos_and_threes(twos: int, threes: int) -> dict[str, int]:
    return {**{f"t{i}": 2 for i in range(twos)}, **{f"h{i}": 3 for i in range(threes)}}


@pytest.mark.parametrize(
    "twos, threes, expected",
    [
        (3, 0, "L4"),
        (7, 0, "L8"),
        (8, 0, "L12"),
        (0, 4, "L9"),
        (1, 7, "L18"),
        (0, 13, "L27"),
        (11, 12, "L36"),
        (4, 12, "L36"),
        (3, 13, "L36b"),
        (2, 2, "L9"),
        (2, 4, "L18"),
        (16, 0, "L32"),
        (40, 0, "L64"),
    ],
)
def test_auto_picks_the_smallest_array(twos, threes, expected):
    assert assign(twos_and_threes(twos, threes)).array == expected


def test_auto_uses_dummy_levels_when_that_saves_runs():
    # 5 three-level factors: L16(4^5) with one dummy level each beats L18 on runs
    assert assign(twos_and_threes(0, 5)).array == "L16b"
    assert assign({"a": 4, "b": 4, "c": 2}).array == "L16b"
    assert assign({"a": 5, "b": 2}).array == "L25"


def test_columns_keep_the_given_factor_order():
    result = assign({"style": 3, "strength": 3, "guidance": 3, "seed_set": 3})
    assert result == Assignment(
        "L9",
        {"style": 0, "strength": 1, "guidance": 2, "seed_set": 3},
        {"style": 3, "strength": 3, "guidance": 3, "seed_set": 3},
    )
    assert list(assign({"h": 3, "t": 2, "g": 3}, "L18").columns.items()) == [("h", 1), ("t", 0), ("g", 2)]
    assert assign({"b": 3, "a": 3}) == assign({"b": 3, "a": 3})  # deterministic


def test_names_are_case_insensitive():
    assert assign({"a": 3}, "l9").array == "L9"
    assert assign({"a": 3}, "AUTO").array == "L9"
    assert assign({"a": 4}, "L16(4^5)").array == "L16b"


def test_dummy_level_rule_repeats_level_one():
    # column level j -> factor level ((j - 1) % k) + 1: level 3 of an L9 column becomes level 1
    assignment = assign({"steps": 2, "a": 3, "b": 3})
    assert assignment.array == "L9" and assignment.columns["steps"] == 0
    rows = assignment.rows({"steps": [20, 30], "a": ["x", "y", "z"], "b": [1, 2, 3]})
    assert [row["steps"] for row in rows] == [20, 20, 20, 30, 30, 30, 20, 20, 20]
    assert [index["steps"] for index in assignment.indices()] == [1, 1, 1, 2, 2, 2, 1, 1, 1]


def test_rows_return_the_exact_level_objects():
    levels = {"style": [object(), object(), object()], "strength": [0.35, 0.5, 0.75], "cfg": [7.0, 9.5]}
    rows = assign({name: len(values) for name, values in levels.items()}).rows(levels)
    table = orthogonal_array("L9")
    assert len(rows) == 9
    for run, row in zip(table, rows):
        assert list(row) == ["style", "strength", "cfg"]
        assert row["style"] is levels["style"][run[0] - 1]
        assert row["strength"] is levels["strength"][run[1] - 1] and isinstance(row["strength"], float)
        assert row["cfg"] is levels["cfg"][(run[2] - 1) % 2]


def test_one_level_factor_is_a_constant_without_column():
    assignment = assign({"a": 2, "b": 2, "sampler": 1, "c": 2})
    assert assignment.array == "L4" and "sampler" not in assignment.columns
    rows = assignment.rows({"a": [0, 1], "b": [0, 1], "sampler": ["euler"], "c": [0, 1]})
    assert [row["sampler"] for row in rows] == ["euler"] * 4


def test_named_array_too_small_says_what_is_needed():
    with pytest.raises(DesignError) as err:
        assign({"style_a": 3, "style_b": 3, "strength": 3, "cfg": 3, "steps": 3}, "L9")
    message = str(err.value)
    assert message.startswith("`design.kind`: L9(3^4) has 4 columns with >=3 levels")
    assert "need 5 columns with >=3 levels (style_a: 3," in message
    assert "L18" in message and "`auto`" in message


def test_too_many_levels_and_bad_counts_are_errors():
    with pytest.raises(DesignError, match=r"`design.kind`: L8\(2\^7\) has columns of at most 2 levels; given a"):
        assign({"a": 3}, "L8")
    with pytest.raises(DesignError, match="at most 5 levels; given style with 7 levels"):
        assign({"style": 7})
    with pytest.raises(DesignError, match="`factors.a`"):
        assign({"a": 0})
    with pytest.raises(DesignError, match="nothing to vary"):
        assign({"a": 1})
    with pytest.raises(DesignError, match="unknown orthogonal array"):
        assign({"a": 2}, "L7")


def test_rows_reject_levels_that_do_not_match_the_assignment():
    assignment = assign({"a": 3, "b": 3})
    with pytest.raises(DesignError, match="`factors.a`"):
        assignment.rows({"a": [1, 2], "b": [1, 2, 3]})
    with pytest.raises(DesignError, match="`factors.b`"):
        assignment.rows({"a": [1, 2, 3]})
    with pytest.raises(DesignError, match="`factors.c`"):
        assignment.rows({"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2]})


# --------------------------------------------------------------------------- SN ratios
def test_sn_ratios_by_hand():
    # larger: mean(1/4, 1/16) = 5/32 -> -10 log10(5/32) = 10 log10(6.4)
    assert sn_ratio([2, 4], "larger") == pytest.approx(8.0618, abs=1e-4)
    # smaller: mean(1, 9) = 5 -> -10 log10 5
    assert sn_ratio([1, 3], "smaller") == pytest.approx(-6.9897, abs=1e-4)
    # nominal: mean 10, sample variance 2 -> 10 log10(100 / 2)
    assert sn_ratio([9, 11], "nominal") == pytest.approx(16.9897, abs=1e-4)
    assert sn_ratio([10], "larger") == pytest.approx(20.0)


def test_sn_ratio_edge_cases():
    assert math.isnan(sn_ratio([5.0], "nominal"))
    assert sn_ratio([3, 3], "nominal") == math.inf
    assert sn_ratio([0, 2], "larger") == -math.inf
    assert sn_ratio([0, 0], "smaller") == math.inf
    with pytest.raises(InputError, match="`sn`: allowed: larger, smaller, nominal"):
        sn_ratio([1], "biggest")
    with pytest.raises(NoDataError, match="`values`"):
        sn_ratio([], "larger")


# ---------------------------------------------------------------------------- analysis
LEVELS = {
    "style": ["s1", "s2", "s3"],
    "strength": [0.3, 0.5, 0.7],
    "guidance": [5.0, 7.5, 10.0],
    "noise": ["x", "y", "z"],
}
EFFECT = {"style": [0, 2, 5], "strength": [1, 0, 3], "guidance": [0, 4, 1], "noise": [0.5, 0, 0.2]}


def true_value(condition) -> float:
    return 10 + sum(EFFECT[f][LEVELS[f].index(condition[f])] for f in LEVELS)


def l9_frame(replicate_offsets=(0.0,)) -> pd.DataFrame:
    rows = assign({f: 3 for f in LEVELS}).rows(LEVELS)
    records = []
    for run, condition in enumerate(rows):
        for k, offset in enumerate(replicate_offsets):
            spread = offset * (run + 1)  # symmetric per condition: the condition mean stays exact
            records.append({**condition, "condition": run, "seed": k, "clip": true_value(condition) + spread})
    return pd.DataFrame(records)


def test_main_effects_recover_the_additive_model():
    result = analyze(l9_frame(), list(LEVELS), "clip")
    grand = 10 + sum(np.mean(v) for v in EFFECT.values())
    assert result.grand_mean == pytest.approx(grand)
    for factor, levels in LEVELS.items():
        rows = result.effects[result.effects["factor"] == factor]
        assert list(rows["level"]) == levels
        expected = [grand + e - np.mean(EFFECT[factor]) for e in EFFECT[factor]]
        assert rows["mean"].to_numpy() == pytest.approx(expected)
        assert list(rows["n"]) == [3, 3, 3]
    assert result.optimum == {"style": "s3", "strength": 0.7, "guidance": 7.5, "noise": "x"}


def test_saturated_l9_pools_the_smallest_factor():
    anova = analyze(l9_frame(), list(LEVELS), "clip").anova.set_index("source")
    # SS = 3 * sum of squared deviations of the effects: 38, 14, 26 and 0.38
    assert anova.loc[["style", "strength", "guidance", "noise"], "ss"].to_numpy() == pytest.approx([38, 14, 26, 0.38])
    assert list(anova["pooled"]) == [False, False, False, True, False, False]
    assert anova.loc["error", "dof"] == 2 and anova.loc["error", "ms"] == pytest.approx(0.19)
    assert anova.loc["style", "f"] == pytest.approx(19 / 0.19)
    rho = anova["contribution_pct"]
    assert rho["style"] == pytest.approx((38 - 2 * 0.19) / 78.38 * 100)
    assert rho["style"] > rho["guidance"] > rho["strength"] > rho["error"] > 0
    assert rho[["style", "strength", "guidance", "error"]].sum() == pytest.approx(100)
    assert math.isnan(rho["noise"]) and rho["total"] == 100


def test_prediction_and_interval_leave_out_pooled_factors():
    result = analyze(l9_frame(), list(LEVELS), "clip")
    assert result.used_factors == ["style", "strength", "guidance"]
    # grand mean + best effects of style, strength, guidance; noise stays at its mean 0.7/3
    assert result.predicted == pytest.approx(10 + 5 + 3 + 4 + 0.7 / 3)
    # n_eff = 9 / (1 + 6); F(0.95; 1, 2) = 18.5128
    half = math.sqrt(18.5128 * 0.19 / (9 / 7))
    assert result.interval == pytest.approx((result.predicted - half, result.predicted + half), abs=1e-4)


def test_replicates_give_an_error_term_and_an_exact_prediction():
    result = analyze(l9_frame(replicate_offsets=(-0.1, 0.1)), list(LEVELS), "clip")
    anova = result.anova.set_index("source")
    assert not anova["pooled"].any()
    assert anova.loc["error", "dof"] == 18 - 1 - 8
    assert anova.loc["error", "ss"] == pytest.approx(sum(2 * (0.1 * r) ** 2 for r in range(1, 10)))
    assert anova.loc["style", "ss"] == pytest.approx(2 * 38)
    assert result.predicted == pytest.approx(22.5)  # the true best: 10 + 5 + 3 + 4 + 0.5
    assert result.interval[0] < 22.5 < result.interval[1]
    for combo in itertools.product(*LEVELS.values()):  # every combination, tried or not
        condition = dict(zip(LEVELS, combo))
        assert result.predict(condition) == pytest.approx(true_value(condition))


def test_sn_optimum_and_smaller_the_better():
    frame = l9_frame(replicate_offsets=(-0.1, 0.1))
    larger = analyze(frame, list(LEVELS), "clip", sn="larger")
    sn_rows = larger.effects[larger.effects["factor"] == "style"]
    by_hand = [
        np.mean([sn_ratio(g["clip"], "larger") for _, g in frame[frame["style"] == s].groupby("condition")])
        for s in LEVELS["style"]
    ]
    assert sn_rows["sn_db"].to_numpy() == pytest.approx(by_hand)
    assert larger.optimum_sn["style"] == "s3"
    smaller = analyze(frame, list(LEVELS), "clip", sn="smaller")
    assert smaller.optimum == {"style": "s1", "strength": 0.5, "guidance": 5.0, "noise": "y"}
    nominal = analyze(frame, list(LEVELS), "clip", sn="nominal", target=15.0)
    assert nominal.optimum["style"] == "s2"  # its mean (about 15.23) is closest to 15


def test_level_order_can_be_given_and_conditions_derived():
    frame = l9_frame().drop(columns="condition")
    order = {f: list(reversed(v)) for f, v in LEVELS.items()}
    result = analyze(frame, order, "clip", condition=None)
    assert list(result.effects[result.effects["factor"] == "strength"]["level"]) == [0.7, 0.5, 0.3]
    assert len(result.conditions) == 9


def test_analysis_input_errors():
    frame = l9_frame()
    with pytest.raises(InputError, match="`response`: column 'score'"):
        analyze(frame, list(LEVELS), "score")
    with pytest.raises(InputError, match="`factors`"):
        analyze(frame, ["style", "seed_count"], "clip")
    mixed = frame.assign(condition=0)
    with pytest.raises(InputError, match="`condition`"):
        analyze(mixed, list(LEVELS), "clip")
    with pytest.raises(InputError, match="`factors.style`"):
        analyze(frame, {"style": ["s1", "s2"]}, "clip")


def test_unknown_level_in_predict_is_an_error():
    result = analyze(l9_frame(), list(LEVELS), "clip")
    with pytest.raises(InputError, match="`style`"):
        result.predict({"style": "s9", "strength": 0.3, "guidance": 5.0})


@pytest.mark.parametrize("column", ["mean", "sn_db"])
def test_response_graph_has_a_panel_per_factor(column):
    result = analyze(l9_frame(replicate_offsets=(-0.1, 0.1)), list(LEVELS), "clip")
    figure = effects_figure(result, column, title="L9")
    assert len(figure.axes) == len(LEVELS)
    first = figure.axes[0]
    assert first.lines[0].get_ydata() == pytest.approx(result.effects[column][:3].to_numpy())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
