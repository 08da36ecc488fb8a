"""Pairwise preferences as a response: analysis, recommendation and steering by choices."""

import itertools
import math

import numpy as np
import pytest

from qeuopt.analysis.observations import condition_table, study_observations
from qeuopt.analysis.study import analyze_study
from qeuopt.cli.main import main
from qeuopt.config.load import build_spec
from qeuopt.errors import InputError, NoDataError, StudyError
from qeuopt.ratings.preferences import PreferenceStore, fit_choices, preference_store_for
from qeuopt.run.steer import AWAITING
from qeuopt.run.steer_pairs import MIN_COMPARISONS
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.studies import study_data
from tests.test_ratings_server import _study_file
from tests.test_ratings_steer import SMALL
from tests.test_ratings_support import L9_GRID, fresh_folder, make_study, rated_template, study_copy

LIKED = ["Hokusai", "Frank Cho", "Richard Dadd"]  # style_a, best first: what the fake rater prefers


@pytest.fixture
def study(workdir, tmp_path_factory):
    return study_copy(rated_template(tmp_path_factory.getbasetemp()), workdir, **L9_GRID)


def judge_by_style(study, left_out=()):
    """Every pair of conditions (but ``left_out``) judged twice by a rater who prefers
    LIKED's order of style_a, ties within a level; sides alternate."""
    conditions = condition_table(study)
    rank = {c: LIKED.index(s) for c, s in zip(conditions["condition"], conditions["style_a"])}
    store = preference_store_for(study.spec)
    for k, (a, b) in enumerate(itertools.combinations(sorted(set(rank) - set(left_out)), 2)):
        for left, right in ((a, b), (b, a)):
            choice = "tie" if rank[left] == rank[right] else "left" if rank[left] < rank[right] else "right"
            store.add(study.name, "ann" if k % 2 else "bob", left, right, choice)
    store.close()
    return rank


def test_analyze_and_recommend_by_preference(study, workdir, capsys):
    judge_by_style(study, left_out=[8])
    data = study_observations(study, "preference")
    assert math.isnan(data.set_index("condition").at[8, "preference"])  # never compared: no score
    means = data.dropna().groupby("style_a")["preference"].mean()
    assert list(means.sort_values(ascending=False).index) == LIKED
    result = analyze_study(study, "preference", log=False, confirmation=False)
    assert result.per == "condition" and result.taguchi.optimum["style_a"] == "Hokusai"

    path = _study_file(study, workdir)
    assert main(["analyze", str(path), "--response", "preference", "--no-confirm", "--no-log"]) == 0
    out = capsys.readouterr().out
    assert "Main effects" in out and "preference" in out and "T-method" not in out
    assert main(["recommend", str(path), "--response", "preference", "--top", "3", "--pure"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.split() and line.split()[0] in ("1", "2", "3")]
    assert "by predicted preference" in lines[0] and len(rows) == 3 and all("Hokusai" in row for row in rows)
    with pytest.raises(InputError, match="`per`"):
        study_observations(study, "preference", per="image")

    assert main(["ratings", "preferences", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "56 choice(s)" in table[0] and "preference_upper" in table[1] and table[-1].split()[0] == "8"  # NaN last
    runs = study.runs().set_index("tags.optuna.trial_number")
    assert runs.loc["0", "metrics.preference_count"] == 14 and math.isnan(runs.loc["8", "metrics.preference_score"])


def test_without_choices_the_error_says_what_to_do(study):
    with pytest.raises(NoDataError, match="no pairwise choices yet.*/pairs"):
        study_observations(study, "preference")
    PreferenceStore("ratings.db").close()  # an empty store says the same
    with pytest.raises(NoDataError, match="no pairwise choices yet"):
        analyze_study(study, "preference", log=False, confirmation=False)


def test_one_kind_of_choice_still_gives_finite_scores():
    one = fit_choices([{"left_condition": 1, "right_condition": 2, "choice": "left"}], [1, 2, 3])
    assert one.coef_[0] > 0 > one.coef_[1] and one.coef_[2] == 0 and np.isfinite(one.covariance_).all()
    mirrored = fit_choices([{"left_condition": 2, "right_condition": 1, "choice": "right"}], [1, 2, 3])
    assert np.allclose(one.coef_, mirrored.coef_) and np.allclose(one.covariance_, mirrored.covariance_)
    tie = fit_choices([{"left_condition": 1, "right_condition": 2, "choice": "tie"}], [1, 2, 3])
    assert np.allclose(tie.coef_, 0) and tie.covariance_[0, 0] < 1.0  # a tie says something too
    assert fit_choices([{"left_condition": 1, "right_condition": 9, "choice": "left"}], [1, 2]) is None


def test_preference_is_an_objective_and_the_config_says_so():
    assert build_spec(study_data(design={"kind": "L9", "objective": "preference"})).design.objective == "preference"
    with pytest.raises(StudyError, match="allowed: clip, rating, combined, preference"):
        build_spec(study_data(design={"kind": "L9", "objective": "likes"}))


def test_a_person_steers_by_choosing_between_pairs(workdir, tmp_path_factory):
    fresh_folder(tmp_path_factory.getbasetemp(), workdir)
    study = make_study(design={"kind": "L4", "objective": "preference"}, **SMALL)
    assert study.run(FakeGenerator(), FakeScorer(), progress=False).ran == 4  # all four await choices
    trials = study.optuna_study().get_trials()
    guidance = {t.number: t.params["guidance"] for t in trials}
    store = PreferenceStore(workdir / "ratings.db")
    pairs = list(itertools.combinations(range(3), 2)) * 4  # trials 0-2: 8 choices each; trial 3 none
    for left, right in pairs:
        store.add(study.name, "ann", left, right, "left" if guidance[left] >= guidance[right] else "right")
    store.close()
    study.run(FakeGenerator(), FakeScorer(), progress=False)
    trials = {t.number: t for t in study.optuna_study().get_trials()}
    told = {n for n, t in trials.items() if t.state.name == "COMPLETE"}
    assert told == {0, 1, 2} and trials[3].user_attrs[AWAITING] and trials[3].state.name == "RUNNING"
    assert MIN_COMPARISONS == 8
    values = {n: trials[n].value for n in told}
    best = max(values, key=values.get)
    assert guidance[best] == max(guidance[n] for n in told)
    runs = study.runs().set_index("tags.optuna.trial_number")
    assert runs.loc[str(best), "metrics.preference_score"] == pytest.approx(values[best])  # MLflow shows it
