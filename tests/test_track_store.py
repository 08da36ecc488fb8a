"""MLflow's SQLite database: copied from a migrated template, atomically, once; the lock
workers take beside a SQLite database."""

import sqlite3
import subprocess
import sys

import pytest

from qeuopt.track.store import _schema_version, ensure_tracking_db, template_database


def test_new_folder_gets_a_migrated_database(workdir):
    ensure_tracking_db("sqlite:///mlflow.db")
    assert _schema_version(workdir / "mlflow.db") == _schema_version(template_database()) is not None
    assert not list(workdir.glob(".mlflow.db.*"))  # no temporary file left behind


def test_half_migrated_database_without_runs_is_set_aside_and_replaced(workdir):
    with sqlite3.connect(workdir / "mlflow.db") as db:  # what a kill during migration leaves
        db.execute("create table alembic_version (version_num varchar(32))")
        db.execute("insert into alembic_version values ('451aebb31d03')")
        db.execute("create table experiments (experiment_id integer)")
    ensure_tracking_db("sqlite:///mlflow.db")
    assert _schema_version(workdir / "mlflow.db") == _schema_version(template_database())
    assert len(list(workdir.glob("mlflow.db.broken-*"))) == 1  # kept, never deleted

    from qeuopt.track.tracker import Tracker

    Tracker("sqlite:///" + str(workdir / "mlflow.db"), "usable")


@pytest.mark.slow
def test_processes_started_together_share_one_database(workdir):
    code = (
        "import sys; from qeuopt.track.tracker import Tracker; "
        f"Tracker('sqlite:///{workdir}/mlflow.db', 'exp-' + sys.argv[1])"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(k)], stderr=subprocess.PIPE, text=True) for k in range(3)
    ]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], errors
    with sqlite3.connect(workdir / "mlflow.db") as db:
        names = {row[0] for row in db.execute("select name from experiments")}
    assert {"exp-0", "exp-1", "exp-2"} <= names


def test_the_database_lock_leaves_sqlites_own_locks_alone(tmp_path):
    """SQLite's locks are POSIX locks, which a process loses when it closes *any*
    descriptor of the file: a study lock taken and released on the database file itself
    let a second worker write while a lane of the first was mid-transaction (two workers on
    a loaded machine then failed with "disk I/O error")."""
    from qeuopt.track.store import database_lock

    db = tmp_path / "optuna.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin immediate")  # this connection alone may write until it commits
    holder.execute("insert into t values (1)")
    with database_lock(f"sqlite:///{db}", "qeuopt.optuna.s"):
        pass
    other = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); c.execute('insert into t values (2)'); c.commit()"
    done = subprocess.run([sys.executable, "-c", other, str(db)], capture_output=True, text=True, timeout=60)
    holder.execute("commit")
    assert done.returncode != 0 and "database is locked" in done.stderr
    assert [row[0] for row in holder.execute("select x from t")] == [1]
