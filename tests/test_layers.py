"""The stack: each stage imports only stages below it. Walks every module's imports
(top level and inside functions) with ``ast``, so a lazy import counts too."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "qeuopt"

# Lower number = lower in the stack. A module may import its own stage and any stage
# with a smaller number; stages on one level stay independent of each other.
LEVELS = {
    "errors": 0,
    "cache": 0,
    "heap": 0,
    "levels": 0.5,
    "design": 1,
    "config": 2,
    "generate": 3,
    "model": 3,
    "track": 3,
    "score": 4,
    "ratings": 5,
    "run": 6,
    "analysis": 7,
    "recommend": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
    "testing": 10,
    "data": 10,
}
# The one door from production code into the tiny test models (named in a study as
# `qeuopt-tiny:sd`), and the score stage's use of that door.
ALLOWED = {("generate", "testing"), ("score", "generate")}


def _stage(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _violations():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        here = _stage(".".join(relative.parts))
        for module in _imports(path):
            if not (module == "qeuopt" or module.startswith("qeuopt.")):
                continue
            there = _stage(module)
            if there == here or (here, there) in ALLOWED or here == "testing":
                continue
            if module == "qeuopt" or LEVELS[there] >= LEVELS[here]:
                yield f"{relative}: imports {module}"


def test_every_stage_has_a_level():
    stages = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    }
    assert stages <= set(LEVELS), stages - set(LEVELS)


def test_imports_point_down_the_stack():
    assert list(_violations()) == []


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from qeuopt.cli.main import main\n")
    assert list(_imports(bad)) == ["qeuopt.cli.main"]
