"""The scripts in experiments/ build valid studies through the API (no model is loaded)."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "experiments" / "artist_pairs_api.py"


@pytest.mark.parametrize("real", [False, True])
def test_experiment_builds_a_valid_study(real):
    build = runpy.run_path(str(SCRIPT))["build_study"]
    study = build(real)
    assert study.spec.design.kind == "L9" and study.spec.generation.mode == "img2img"
    assert study.spec.generation.model == ("stable-diffusion-v1-5/stable-diffusion-v1-5" if real else "qeuopt-tiny:sd")
