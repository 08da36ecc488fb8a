"""What a `qeuopt` process pays around its models: the collector settings (qeuopt/heap.py),
deferred while the pipeline loads, then the loaded heap frozen, while callers of the library
keep their own; and no model library imported before a model is needed."""

import gc
import importlib
import sys

import pytest

from qeuopt import heap
from qeuopt.config.spec import GenerationSettings
from qeuopt.generate.diffusion import DiffusionGenerator
from qeuopt.testing.tiny import TINY_SD

cli = importlib.import_module("qeuopt.cli.main")  # the module: `qeuopt.cli.main` is also the function


@pytest.fixture(autouse=True)
def restore_collector():
    thresholds = gc.get_threshold()
    yield
    heap._saved = None
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_collection_waits_until_the_pipeline_is_loaded_then_skips_what_it_made():
    default = gc.get_threshold()
    heap.defer_collection()
    assert gc.get_threshold() == heap.SETUP_THRESHOLDS
    frozen = gc.get_freeze_count()
    DiffusionGenerator(GenerationSettings(model=TINY_SD, device="cpu")).pipeline("txt2img")
    assert gc.get_threshold() == default
    assert gc.get_freeze_count() > frozen


def test_a_library_caller_keeps_its_collector():
    default, frozen = gc.get_threshold(), gc.get_freeze_count()
    DiffusionGenerator(GenerationSettings(model=TINY_SD, device="cpu")).pipeline("txt2img")
    assert gc.get_threshold() == default
    assert gc.get_freeze_count() == frozen


@pytest.mark.parametrize(
    "command, deferred", [("run", True), ("worker", True), ("demo", True), ("steer", True), ("rate", False)]
)
def test_the_qeuopt_process_defers_only_for_commands_that_load_a_pipeline(monkeypatch, command, deferred):
    seen = {}

    def fake_main(argv):
        seen["argv"], seen["thresholds"] = argv, gc.get_threshold()
        return 0

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(sys, "argv", ["qeuopt", command, "study.toml"])
    frozen = gc.get_freeze_count()
    assert cli.entry() == 0
    assert seen["argv"] == [command, "study.toml"]
    assert (seen["thresholds"] == heap.SETUP_THRESHOLDS) is deferred
    assert gc.get_freeze_count() > frozen  # the exit skips collecting what is about to be freed


def test_the_warning_filters_import_no_model_library_and_a_model_load_turns_the_bars_off():
    """`qeuopt run` installs the filters first thing; a rerun with nothing to generate must
    not pay diffusers' import (~5 s of CPU) for loading bars it will never show."""
    import subprocess

    code = (
        "import sys\n"
        "from qeuopt.generate.noise import third_party_noise_off\n"
        "third_party_noise_off(progress_bars=False)\n"
        "assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules\n"
        "third_party_noise_off()\n"
        "from diffusers.utils import logging as d\n"
        "from transformers.utils import logging as t\n"
        "assert not d.is_progress_bar_enabled() and not t.is_progress_bar_enabled()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
