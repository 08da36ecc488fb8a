"""``qeuopt ui``: MLflow's UI on a study's tracking store, opened at the study's view."""

from __future__ import annotations

import subprocess
import sys


def cmd_ui(args) -> int:
    uri = args.backend_store_uri
    view = None
    if args.study:
        from qeuopt.run.study import Study

        study = Study.from_file(args.study)
        uri, view = study.spec.tracking.mlflow_uri, study.mlflow_view()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
    ]
    print(f"MLflow UI on http://{args.host}:{args.port}{view or ''} (Ctrl-C stops it)", flush=True)
    return serve_until_stopped(command)


def serve_until_stopped(command: list[str]) -> int:
    """Run a server in its own process group and take the whole group down with us, on
    Ctrl-C and on SIGTERM: MLflow's UI starts worker processes of its own, which a plain
    child-process call would leave running (and holding the port) after we exit."""
    import signal

    server = subprocess.Popen(command, start_new_session=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        print("stopping the server", file=sys.stderr)
        _stop_group(server, signal.SIGTERM, 10)
        _stop_group(server, signal.SIGKILL, 10)  # whatever of the group is left
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_group(server, sig, timeout: float) -> None:
    import contextlib
    import os

    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:  # the whole group is gone already
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=timeout)
