import os

import pytest

from tests.browser import browser  # noqa: F401 - the headless Chromium fixture, for the page tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# The tiny models are too small to gain from threads; two threads on two busy cores thrash.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test runs in its own folder: mlflow.db, optuna.db and outputs land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
