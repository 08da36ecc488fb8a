import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "mlflow", "optuna", "sentence_transformers")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_qeuopt_loads_no_heavy_library():
    assert _loaded_after("import qeuopt; qeuopt.Factor; qeuopt.__doc__") == set()


def test_cli_help_loads_no_heavy_library():
    code = "from qeuopt.cli.main import build_parser\nbuild_parser().format_help()"
    assert _loaded_after(code) == set()


def test_validation_loads_no_heavy_library():
    study = Path(__file__).parents[1] / "qeuopt" / "data" / "demo_tiny_l9.toml"
    assert _loaded_after(f"from qeuopt.config.load import load_study_file; load_study_file({str(study)!r})") == set()


def test_public_api_is_listed_and_resolves():
    import qeuopt

    for name in ("Study", "optimize", "rank", "analyze_study", "export_settings", "StudyError", "__version__"):
        assert name in dir(qeuopt) and name in qeuopt.__all__
        assert getattr(qeuopt, name) is not None
    from importlib.metadata import version

    assert qeuopt.__version__ == version("qeuopt")
