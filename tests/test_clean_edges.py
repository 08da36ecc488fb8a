"""The edges a newcomer hits first: a model that cannot load is one line, `qeuopt ui` takes
its server down with it, and nothing qeuopt writes is left for git to see."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qeuopt.cli.main import main
from qeuopt.generate.models import load_failure

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "qeuopt" / "data" / "demo_tiny_l9.toml"


def test_a_model_that_cannot_load_is_one_line_without_tracebacks(workdir, capfd):
    text = DEMO.read_text().replace('"qeuopt-tiny:sd"', '"stable-diffusion-v1-5/stable-diffusion-v1-5"')
    (workdir / "study.toml").write_text(text)
    (workdir / "sketch.png").write_bytes((DEMO.parent / "sketch.png").read_bytes())
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: the hub is offline in tests
    # the model is checked before anything is created: a refused study (exit 2), one problem
    assert main(["run", "study.toml", "--quiet"]) == 2
    err = "\n".join(line for line in capfd.readouterr().err.splitlines() if line.strip())
    assert "Traceback" not in err and "Trial 0 failed" not in err and "Warning" not in err, err
    assert err.startswith("qeuopt: invalid study: 1 problem(s)"), err
    assert "`generation.model`: 'stable-diffusion-v1-5/stable-diffusion-v1-5'" in err
    assert "offline" in err and "Hugging Face cache" in err
    assert sorted(p.name for p in workdir.iterdir()) == ["sketch.png", "study.toml"]  # nothing created


def test_load_failure_names_a_missing_local_model(tmp_path):
    message = load_failure(
        "generation.model",
        "./models/mine.safetensors",
        str(tmp_path / "models/mine.safetensors"),
        OSError("long library text\nsecond line"),
    )
    assert message.startswith("`generation.model`: './models/mine.safetensors' is not a file or folder here (")
    assert "Hugging Face Hub id" in message and "long library text" not in message


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_ui_takes_its_server_and_the_server_workers_down(tmp_path, stop):
    """A stand-in for `mlflow ui`: a server process with a worker of its own, as uvicorn has."""
    pids = tmp_path / "pids"
    server = textwrap.dedent(f"""
        import os, subprocess, sys, time
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{worker.pid}}")
        time.sleep(600)
    """)
    wrapper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from qeuopt.cli.ui import serve_until_stopped; "
            f"sys.exit(serve_until_stopped([sys.executable, '-c', {server!r}]))",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        # as from a terminal: a suite started in the background (`cmd &`) ignores Ctrl-C,
        # and a Python started with SIGINT ignored keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    children = [int(p) for p in pids.read_text().split()]
    wrapper.send_signal(stop)
    assert wrapper.wait(30) == 0
    for pid in children:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), f"process {pid} survived"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_git_ignores_everything_qeuopt_writes():
    written = [
        "mlflow.db",
        "mlflow.db.broken-20260101-000000",
        "optuna.db",
        "ratings.db",
        "ratings.db-wal",
        "ratings.db-shm",
        "mlartifacts/1/x",
        "outputs/demo_tiny_l9/report.html",
        "demo/demo_tiny_l9.toml",
        "studies/artist_pairs_l9_confirm.toml",
        "studies/artist_pairs_l9_top20.toml",
    ]
    result = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=ROOT, capture_output=True, text=True)
    assert sorted(result.stdout.split()) == sorted(written)
    clean = (ROOT / "Makefile").read_text().split("\nclean:", 1)[1]
    for name in (
        "mlflow.db",
        "optuna.db",
        "ratings.db",
        "ratings.db-wal",
        "mlartifacts",
        "outputs",
        "demo",
        "studies/*_confirm.toml",
        "studies/*_top*.toml",
    ):
        assert f" {name}" in clean, name
