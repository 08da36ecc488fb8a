"""Exactly once on one machine: the default SQLite stores, several `qeuopt run` at once or
apart, a kill -9 and an immediate rerun, a kill during the first run's store creation.
Workers are real processes (``python -m qeuopt.testing.worker``, the fake generator
sleeping per grid in place of a GPU)."""

import json
import signal
import time

import optuna
import pytest

from qeuopt.cli.main import main
from qeuopt.errors import StoreError
from qeuopt.run.loop import TrialLoop
from qeuopt.run.queue import missing_rows, open_study
from qeuopt.run.workers import dead_here
from qeuopt.track.store import masked, store_errors
from tests.servers import assert_each_row_once, start_worker, trials_by_state, write_study

OPTUNA = "sqlite:///optuna.db"


def wait_for(predicate, timeout: float = 240.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def finish(process, timeout: float = 400.0) -> tuple[int, dict, str]:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return process.returncode, (json.loads(lines[-1]) if lines else {}), err


def states_now(storage: str, name: str = "once") -> dict[str, list]:
    try:
        return trials_by_state(storage, name)
    except Exception:  # noqa: BLE001 - the database or the study may not exist yet
        return {}


def running_of(storage: str, pid: int):
    return [
        t for t in states_now(storage).get("RUNNING", []) if t.user_attrs.get("qeuopt.worker", {}).get("pid") == pid
    ]


# -- in one process ----------------------------------------------------------------------
def test_missing_rows_is_a_multiset_and_ignores_failed_trials(workdir):
    study = open_study("m", OPTUNA, "random")
    rows = [{"a": 1}, {"a": 1}, {"a": 2}]
    study.enqueue_trial({"a": 1})
    trial = study.ask()
    trial.suggest_categorical("a", [1, 2])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"a": 1})
    assert missing_rows(study.get_trials(), rows) == [{"a": 1}, {"a": 2}]


def test_a_fixed_design_never_asks_the_sampler(workdir):
    study = open_study("fixed", OPTUNA, "tpe")
    loop = TrialLoop(study, {"a": [1, 2, 3]}, rows=[{"a": 2}, {"a": 3}])
    assert loop.resume().open == 2
    done = [loop.next(lambda values, trial: float(values["a"])) for _ in range(3)]
    assert [d.params for d in done[:2]] == [{"a": 2}, {"a": 3}] and done[2] is None
    assert len(study.trials) == 2  # the empty queue gave nothing, and nothing was sampled
    assert loop.resume().open == 0 and loop.next(lambda values, trial: 0.0) is None


def test_an_adaptive_budget_counts_every_worker(workdir):
    first, second = (TrialLoop(open_study("adaptive", OPTUNA, "random"), {"a": [1, 2, 3]}, budget=3) for _ in range(2))
    ran = [
        first.next(lambda v, t: 1.0),
        second.next(lambda v, t: 1.0),
        first.next(lambda v, t: 1.0),
        second.next(lambda v, t: 1.0),
        first.next(lambda v, t: 1.0),
    ]
    assert sum(r is not None for r in ran) == 3
    assert len(open_study("adaptive", OPTUNA, "random").trials) == 3


def test_an_error_fails_the_trial_and_its_row_is_queued_again(workdir):
    study = open_study("again", OPTUNA, "random")
    failed = []
    loop = TrialLoop(study, {"a": [1, 2]}, rows=[{"a": 1}], on_fail=failed.append)
    loop.resume()

    def broken(values, trial):
        raise RuntimeError("GPU fell over")

    with pytest.raises(RuntimeError):
        loop.next(broken)
    assert [t.state.name for t in study.trials] == ["FAIL"] and [t.number for t in failed] == [0]
    assert loop.resume().open == 1  # the row is back
    assert loop.next(lambda v, t: 2.0).params == {"a": 1}


def test_a_dead_process_on_this_host_is_recognised(workdir):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study = open_study("dead", OPTUNA, "random")
    study.enqueue_trial({"a": 1})
    loop = TrialLoop(study, {"a": [1, 2]}, rows=[{"a": 1}], say=lambda text: None)
    trial = loop.claim()
    assert not dead_here(study.trials[0])  # this very process
    trial.set_user_attr("qeuopt.worker", {**trial.user_attrs["qeuopt.worker"], "pid": int(gone.stdout)})
    assert dead_here(study.trials[0])
    assert loop.resume().open == 1 and study.trials[0].state.name == "FAIL"


def test_messages_mask_passwords():
    url = "postgresql://me:hunter2@db.example:5432/studies"
    assert masked(url) == "postgresql://me:***@db.example:5432/studies"
    with pytest.raises(StoreError) as caught, store_errors(url, "opening the Optuna storage"):
        import sqlalchemy

        raise sqlalchemy.exc.OperationalError(f"connect to {url} failed", None, Exception("refused"))
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_init_queues_once_and_a_worker_needs_it(workdir, capsys):
    study = write_study(workdir / "s.toml")
    assert main(["worker", str(study), "--quiet"]) == 1
    assert "run `qeuopt init STUDY` once" in capsys.readouterr().err
    assert main(["init", str(study)]) == 0
    assert main(["init", str(study)]) == 0
    assert len(trials_by_state(OPTUNA, "once")["WAITING"]) == 9
    assert "9 condition(s) to run" in capsys.readouterr().out


def test_environment_and_options_override_the_study_file(workdir, monkeypatch, capsys):
    study = write_study(workdir / "s.toml")
    monkeypatch.setenv("QEUOPT_OPTUNA_STORAGE", f"sqlite:///{workdir / 'from-env.db'}")
    assert main(["init", str(study)]) == 0
    assert len(trials_by_state(f"sqlite:///{workdir / 'from-env.db'}", "once")["WAITING"]) == 9
    assert main(["init", str(study), "--optuna-storage", f"sqlite:///{workdir / 'from-option.db'}"]) == 0
    assert (workdir / "from-option.db").is_file() and not (workdir / "optuna.db").exists()
    bad = "postgresql://me:hunter2@127.0.0.1:1/none"
    assert main(["init", str(study), "--optuna-storage", bad]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qeuopt: postgresql://me:***@127.0.0.1:1/none: opening the Optuna storage failed")
    assert "hunter2" not in err and "Traceback" not in err


def test_ratings_follow_a_shared_optuna_database_unless_named(workdir, monkeypatch):
    from qeuopt.ratings.store import store_for
    from qeuopt.run.study import Study

    study = write_study(workdir / "s.toml")
    shared = "postgresql://me:hunter2@db.example/studies"
    assert Study.from_file(study).spec.tracking.ratings_store == "ratings.db"  # SQLite, this machine
    monkeypatch.setenv("QEUOPT_OPTUNA_STORAGE", shared)
    assert Study.from_file(study).spec.tracking.ratings_store == shared  # raters everywhere share it
    monkeypatch.setenv("QEUOPT_RATINGS_DB", "mine.db")
    with store_for(Study.from_file(study).spec) as store:
        assert store.put("once", 0, 0, "ann", 4) == 1
    assert (workdir / "mine.db").is_file() and not (workdir / "ratings.db").exists()


def test_a_ratings_database_of_another_kind_is_refused_before_anything_is_made(workdir, monkeypatch, capsys):
    study = write_study(workdir / "s.toml")
    monkeypatch.setenv("QEUOPT_RATINGS_DB", "mysql://me:hunter2@db.example/r")
    assert main(["init", str(study)]) == 2
    err = capsys.readouterr().err
    assert "`tracking.ratings_db`: a URI with scheme sqlite, postgresql is allowed" in err
    assert not (workdir / "optuna.db").exists()


def test_the_parent_run_stays_running_until_the_last_worker_leaves(workdir):
    from qeuopt.run.queue import design_rows
    from qeuopt.run.study import Study
    from qeuopt.testing.fake import FakeGenerator, FakeScorer

    study = Study.from_file(write_study(workdir / "s.toml"))
    study.init()
    other = TrialLoop(study.optuna_study(), study.spec.space.levels(), design_rows(study.spec), say=lambda t: None)
    held = other.claim()  # another live worker holds one row
    summary = study.run(FakeGenerator(), FakeScorer(), progress=False, wait_s=0.5)
    assert summary.ran == 8 and [u.split()[0] for u in summary.unfinished] == [f"c{held.number:03d}"]
    parent = study.tracker().find_study_run("once")
    assert study.tracker().client.get_run(parent).info.status == "RUNNING"  # not finished: a row is open
    other.study.tell(held, state=optuna.trial.TrialState.FAIL)  # that worker gives up; its row comes back
    assert study.run(FakeGenerator(), FakeScorer(), progress=False).ran == 1
    assert study.tracker().client.get_run(parent).info.status == "FINISHED"


def _parent_runs():
    import mlflow

    client = mlflow.MlflowClient("sqlite:///mlflow.db")
    experiment = client.get_experiment_by_name("once")
    return client.search_runs([experiment.experiment_id], "tags.`qeuopt.role` = 'study'")


# -- processes ---------------------------------------------------------------------------
@pytest.mark.slow
def test_two_runs_started_together_run_each_row_once(workdir):
    study = write_study(workdir / "s.toml")
    workers = [start_worker(workdir, study, 0.3) for _ in range(2)]
    results = [finish(w) for w in workers]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert sum(summary["ran"] for _, summary, _ in results) == 9  # no row generated twice
    assert len(assert_each_row_once(OPTUNA, study)) == 9
    assert len(trials_by_state(OPTUNA, "once")) == 1  # COMPLETE only: nothing failed, nothing extra
    parents = _parent_runs()
    assert [r.info.status for r in parents] == ["FINISHED"]  # one, ended by the last worker to leave


@pytest.mark.slow
def test_a_run_started_later_joins_and_each_row_runs_once(workdir):
    study = write_study(workdir / "s.toml")
    first = start_worker(workdir, study, 3.0)
    wait_for(lambda: len(states_now(OPTUNA).get("COMPLETE", [])) >= 1)
    second = start_worker(workdir, study, 3.0)
    results = [finish(first), finish(second)]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert results[1][1]["ran"] >= 1 and sum(summary["ran"] for _, summary, _ in results) == 9
    assert len(assert_each_row_once(OPTUNA, study)) == 9


@pytest.mark.slow
def test_a_killed_run_rerun_at_once_completes_every_row(workdir):
    study = write_study(workdir / "s.toml")
    victim = start_worker(workdir, study, 2.0, QEUOPT_HEARTBEAT_S="30")  # stale only after 90 s
    held = wait_for(lambda: running_of(OPTUNA, victim.pid))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    start = time.monotonic()
    code, summary, err = finish(start_worker(workdir, study, 0.2, QEUOPT_HEARTBEAT_S="30"))
    assert code == 0, err
    assert f"c{held[0].number:03d}: its worker" in err and "died" in err
    assert time.monotonic() - start < 90  # no wait for the heartbeat's grace period
    complete = assert_each_row_once(OPTUNA, study)
    assert summary["complete"] == 9 and len(complete) == 9
    assert not list((workdir / "outputs" / "once").glob("*.partial"))


@pytest.mark.slow
@pytest.mark.parametrize("database", ["optuna.db", "mlflow.db"])
def test_a_kill_while_the_first_run_creates_its_stores_then_rerun_completes(workdir, database):
    study = write_study(workdir / "s.toml")
    victim = start_worker(workdir, study, 0.1)
    wait_for(lambda: (workdir / database).exists() or any(workdir.glob(f".{database}.*.tmp")), every=0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    code, summary, err = finish(start_worker(workdir, study, 0.1))
    assert code == 0, err
    assert summary["complete"] == 9
    assert len(assert_each_row_once(OPTUNA, study)) == 9
