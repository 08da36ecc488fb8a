"""A study that already ran and then changed is explained, never crashed on or mixed;
``start_over`` (``qeuopt run --fresh``) deletes what it left and keeps its ratings in a CSV.
Failures of the machine (full disk, read-only database) become one ``qeuopt:`` line."""

import errno
import sqlite3

import pytest

from qeuopt.cli.main import build_parser
from qeuopt.errors import StudyError, failure_message
from qeuopt.ratings.preferences import PreferenceStore
from qeuopt.run.fingerprint import ATTR, start_over
from qeuopt.testing.fake import FakeGenerator, FakeScorer
from tests.test_ratings_support import make_study

SMALL = {"generation": {"grid": [1, 2], "width": 32, "height": 32}}


def run(study):
    return study.run(FakeGenerator(), FakeScorer(), progress=False)


def changed_study():
    from tests.studies import study_data

    factors = study_data()["factors"]
    factors["guidance"] = [6.0, 8.0, 12.0]
    return make_study(factors=factors, **SMALL)


def test_changed_levels_are_explained_with_the_two_ways_out(workdir):
    assert run(make_study(**SMALL)).total == 9
    with pytest.raises(StudyError) as caught:
        run(changed_study())
    text = str(caught.value)
    assert "`factors.guidance`: was [6.0, 8.0, 10.0]" in text and "[6.0, 8.0, 12.0]" in text
    assert "new `name`" in text and "--fresh" in text
    assert run(make_study(**SMALL)).ran == 0  # the unchanged study still resumes


def test_a_study_from_before_fingerprints_is_checked_by_its_trials(workdir):
    study = make_study(**SMALL)
    run(study)
    study.optuna_study().set_user_attr(ATTR, None)
    with pytest.raises(StudyError, match=r"`factors.guidance`: levels were \[6.0, 8.0, 10.0\]"):
        run(changed_study())


def test_start_over_deletes_the_study_and_saves_its_ratings(workdir):
    run(make_study(**SMALL))
    with PreferenceStore(workdir / "ratings.db") as store:
        store.put("unit", 0, 1, "ann", 4)
        store.add("unit", "bob", 2, 5, "left")  # condition numbers: meaningless once started over
    changed = changed_study()
    message = start_over(changed)
    assert "ratings saved to unit-ratings-" in message and "Optuna trials deleted" in message
    assert "choices saved to unit-choices-" in message
    assert "unit,0,1,ann,4," in next(workdir.glob("unit-ratings-*.csv")).read_text()
    assert "unit,bob,2,5,left," in next(workdir.glob("unit-choices-*.csv")).read_text()
    with PreferenceStore(workdir / "ratings.db") as store:
        assert store.rows("unit") == [] and store.choices("unit") == []
    summary = run(changed)
    assert summary.ran == 9 and summary.total == 9
    assert len(changed.runs()) == 9  # the old study's runs are in MLflow's trash
    assert {float(v) for v in changed.runs()["params.guidance"]} == {6.0, 8.0, 12.0}


def test_run_has_fresh_option():
    assert build_parser().parse_args(["run", "s.toml", "--fresh"]).fresh


def test_machine_failures_become_one_line():
    full = OSError(errno.ENOSPC, "No space left on device", "outputs/unit/c003.partial/00_seed1.png")
    assert failure_message(full) == "No space left on device: outputs/unit/c003.partial/00_seed1.png"
    try:
        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.Error as inner:
            raise RuntimeError("wrapped by a library") from inner
    except RuntimeError as outer:
        assert "readonly database" in failure_message(outer)
    assert failure_message(KeyError("a bug")) is None  # a bug keeps its traceback


def test_ctrl_c_inside_optuna_bookkeeping_is_an_interruption(monkeypatch, capsys):
    """Optuna's _run_trial raises UnboundLocalError when Ctrl-C lands in its tell step."""
    import importlib

    cli = importlib.import_module("qeuopt.cli.main")  # qeuopt.cli.main is also the name of the function

    def wrapped(args):
        try:
            raise KeyboardInterrupt
        finally:
            raise UnboundLocalError("cannot access local variable 'updated_state'")

    monkeypatch.setattr(cli, "cmd_validate", wrapped)
    assert cli.main(["validate", "x.toml"]) == 130
    assert "interrupted" in capsys.readouterr().err
