"""Real servers and worker processes for the many-worker tests and the scale benchmark.

- :func:`postgres_server`: a throw-away PostgreSQL (Debian's binaries, installed by
  ``scripts/install-postgres.sh``): ``initdb`` into a temporary folder and ``pg_ctl
  start`` on 127.0.0.1 at a free port. PostgreSQL refuses to run as root, so under root
  it runs as the ``postgres`` user (``runuser``).
- :func:`mlflow_server`: ``mlflow server`` on 127.0.0.1 with proxied artifacts
  (``--artifacts-destination``), the set-up the README recommends for several machines.
- :func:`start_worker`: ``python -m qeuopt.testing.worker`` in a folder, as one GPU box.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL bin folder, or whichever ``initdb`` is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    if postgres_bin() is None:
        return "PostgreSQL is not installed (run `make servers`, which runs scripts/install-postgres.sh)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without `runuser`, and PostgreSQL refuses to run as root"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install qeuopt[postgres])"
    return None


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server():
    """Yield the URL of a fresh PostgreSQL server; it is stopped and deleted afterwards."""
    bin_dir, port = postgres_bin(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="qeuopt-pg-"))
    data, log = folder / "data", folder / "server.log"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "qeuopt", "--no-sync", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        # trust authentication ignores the password: it is here to show that messages mask it
        yield f"postgresql://qeuopt:secret-pw@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """A new empty database on the server of ``url``; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'create database "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def mlflow_server(folder: Path):
    """``mlflow server`` with its own SQLite store and proxied artifacts in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((folder / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def worker_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    }
    env.update(extra)
    return env


def start_worker(folder: Path, study: Path, seconds: float, *options: str, **env: str) -> subprocess.Popen:
    """One worker process of ``study`` in ``folder``; read its output with ``communicate``."""
    return subprocess.Popen(
        [sys.executable, "-m", "qeuopt.testing.worker", str(study), "--seconds", str(seconds), *options],
        cwd=folder,
        env=worker_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


L9_FACTORS = {"a": ["x", "y", "z"], "b": ["p", "q", "r"], "strength": [0.35, 0.45, 0.75], "guidance": [6.0, 8.0, 10.0]}
L18_FACTORS = {
    "flag": ["on", "off"],
    "a": ["x", "y", "z"],
    "b": ["p", "q", "r"],
    "c": ["u", "v", "w"],
    "strength": [0.35, 0.45, 0.75],
    "guidance": [6.0, 8.0, 10.0],
    "steps": [2, 3, 4],
}


def write_study(path: Path, name: str = "once", kind: str = "L9", factors=None, **tracking: str) -> Path:
    """A study file on the fake generator's scale (32x32, two images per grid)."""
    import tomli_w

    factors = factors or L9_FACTORS
    data = {
        "name": name,
        "prompt": {"template": " ".join(f"{{{k}}}" for k in factors if k not in ("strength", "guidance", "steps"))},
        "factors": factors,
        "design": {"kind": kind},
        "generation": {"steps": 4, "width": 32, "height": 32, "grid": [1, 2], "model": "qeuopt-tiny:sd"},
        "scoring": {"clip_model": "qeuopt-tiny:clip"},
    }  # offline-resolvable names: workers bring fakes
    if tracking:
        data["tracking"] = tracking
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    return path


def trials_by_state(storage: str, name: str) -> dict[str, list]:
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    states: dict[str, list] = {}
    for trial in study.get_trials(deepcopy=False):
        states.setdefault(trial.state.name, []).append(trial)
    return states


def assert_each_row_once(storage: str, study_file: Path) -> list:
    """Every row of the design has exactly one COMPLETE trial, and no trial anywhere was
    proposed by the sampler (each carries the design's fixed params)."""
    from collections import Counter

    from qeuopt.config.load import load_study_file
    from qeuopt.levels import level_key
    from qeuopt.run.queue import design_rows

    spec = load_study_file(study_file)
    rows = design_rows(spec)
    names = list(rows[0])
    states = trials_by_state(storage, spec.name)
    everything = [t for trials in states.values() for t in trials]
    assert all("fixed_params" in t.system_attrs for t in everything), "a trial came from the sampler"
    key = lambda params: tuple(level_key(params[n]) for n in names)
    assert Counter(key(t.params) for t in states.get("COMPLETE", [])) == Counter(key(r) for r in rows)
    assert not states.get("RUNNING") and not states.get("WAITING")
    return states.get("COMPLETE", [])
