"""Exactly once across workers and "machines", against real servers: a PostgreSQL
started by tests/servers.py (Debian's binaries, `make servers` installs them) and an
`mlflow server` subprocess with proxied artifacts. A machine is a working folder plus a
``QEUOPT_HOST`` of its own (a pid means nothing on another host, so only heartbeats tell
that such a worker died)."""

import signal
import uuid
from pathlib import Path

import pytest

from qeuopt.cli.main import main
from tests.servers import (
    L18_FACTORS,
    assert_each_row_once,
    create_database,
    mlflow_server,
    postgres_missing,
    postgres_server,
    start_worker,
    trials_by_state,
    write_study,
)
from tests.test_once import finish, running_of, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing()))]


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as url:
        yield url


@pytest.fixture
def database(postgres):
    """A fresh database per test, named by the environment only (no password in study files)."""
    return create_database(postgres, f"t{uuid.uuid4().hex[:10]}")


def test_four_workers_started_together_on_one_l18(workdir, database):
    study = write_study(workdir / "s.toml", kind="L18", factors=L18_FACTORS)
    assert "secret" not in study.read_text()
    workers = [start_worker(workdir, study, 0.5, QEUOPT_OPTUNA_STORAGE=database) for _ in range(4)]
    results = [finish(w) for w in workers]
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    assert sum(summary["ran"] for _, summary, _ in results) == 18  # nothing generated twice
    assert len(assert_each_row_once(database, study)) == 18
    assert set(trials_by_state(database, "once")) == {"COMPLETE"}


def test_survivors_run_the_row_of_a_killed_worker(workdir, database, monkeypatch):
    study = write_study(workdir / "s.toml")
    monkeypatch.setenv("QEUOPT_OPTUNA_STORAGE", database)
    assert main(["init", str(study)]) == 0
    env = {"QEUOPT_OPTUNA_STORAGE": database, "QEUOPT_HEARTBEAT_S": "3"}
    victim = start_worker(workdir, study, 3.0, "--worker", QEUOPT_HOST="machine-0", **env)
    wait_for(lambda: running_of(database, victim.pid))
    survivors = [start_worker(workdir, study, 1.0, "--worker", QEUOPT_HOST=f"machine-{k}", **env) for k in (1, 2)]
    wait_for(
        lambda: any(
            t.user_attrs.get("qeuopt.worker", {}).get("host") != "machine-0"
            for t in trials_by_state(database, "once").get("RUNNING", [])
        )
    )
    held = wait_for(lambda: running_of(database, victim.pid), every=0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    results = [finish(w) for w in survivors]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert any(f"c{held[0].number:03d}: its worker (machine-0" in err for _, _, err in results)
    assert_each_row_once(database, study)
    assert held[0].number in [t.number for t in trials_by_state(database, "once")["FAIL"]]


def test_two_machines_one_mlflow_server_every_grid_downloadable(tmp_path, database, monkeypatch):
    import mlflow

    from qeuopt.ratings.catalog import Catalog
    from qeuopt.ratings.server import RatingServer
    from qeuopt.run.study import Study
    from tests.test_ratings_server import rate, request

    with mlflow_server(tmp_path / "server") as url:
        machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
        studies = [write_study(folder / "s.toml") for folder in machines]
        env = {"QEUOPT_OPTUNA_STORAGE": database, "MLFLOW_TRACKING_URI": url}
        workers = [
            start_worker(folder, file, 0.5, QEUOPT_HOST=folder.name, **env) for folder, file in zip(machines, studies)
        ]
        results = [finish(w) for w in workers]
        assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
        assert all(summary["ran"] >= 1 for _, summary, _ in results)  # both machines worked
        assert_each_row_once(database, studies[0])

        client = mlflow.MlflowClient(url)
        experiment = client.get_experiment_by_name("once")
        assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server owns storage
        runs = client.search_runs([experiment.experiment_id], "tags.`qeuopt.role` = 'condition'")
        assert len(runs) == 9 and {r.info.status for r in runs} == {"FINISHED"}
        for run in runs:  # downloaded from the server, wherever the run was made
            grid = client.download_artifacts(run.info.run_id, "grid.png", str(tmp_path / "dl" / run.info.run_id))
            assert Path(grid).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # the rating page on machine B lists every condition, A's images fetched from the server
        monkeypatch.chdir(machines[1])
        monkeypatch.setenv("QEUOPT_OPTUNA_STORAGE", database)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        catalog = Catalog(Study.from_file(studies[1]))
        assert catalog.known() == {n: 2 for n in range(9)}
        assert all(entry.grid.is_file() for entry in catalog.entries())

        # raters on both machines rate one study: the ratings live in PostgreSQL, not in a file
        servers = [RatingServer(Study.from_file(file), port=0).start() for file in studies]
        try:
            assert rate(servers[0].url, "ann", 4, 1, 5)[0] == 200
            assert rate(servers[1].url, "bob", 4, 0, 2)[0] == 200
            for server in servers:
                assert request(server.url, "GET", "/api/ratings?rater=ann")[1]["ratings"] == [
                    {"condition": 4, "image": 1, "rating": 5}
                ]
            # pairwise choices too: made on A, withdrawn on B, one kept
            pairs = [{"rater": "ann", "left": 1, "right": 2, "choice": c} for c in ("left", "tie")]
            assert [request(servers[0].url, "POST", "/api/pairs", body)[0] for body in pairs] == [200, 200]
            assert request(servers[1].url, "POST", "/api/pairs", {**pairs[0], "choice": None})[0] == 200
            mine = request(servers[1].url, "GET", "/api/pairs?rater=ann")[1]["choices"]
            assert [c["choice"] for c in mine] == ["left"]  # undo withdrew the latest (the tie)
            assert servers[1].app.sync.flush(30) and servers[1].app.pairs.sync.flush(30)
        finally:
            for server in servers:
                server.stop()
        assert not any((folder / "ratings.db").exists() for folder in machines)
        rated = client.search_runs([experiment.experiment_id], "tags.`optuna.trial_number` = '4'")
        assert [r.data.metrics["rating_count"] for r in rated] == [2]
