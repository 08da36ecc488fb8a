import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test runs in its own folder: mlflow.db, optuna.db and outputs land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
