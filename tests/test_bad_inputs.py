"""The catalogue of bad inputs: each is refused with the promised exit code or exception,
a message that names the field, and a working folder left byte for byte as it was (no
database, folder, run or trial created). Grow it with every new check."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import math
import re
from pathlib import Path

import pytest
import tomli_w

from qeuopt.cli.main import main
from qeuopt.errors import EvaluationError, InputError, NoDataError, NotFittedError, RatingError, StudyError
from tests.studies import study_data

TINY = {"generation": {"model": "qeuopt-tiny:sd"}, "scoring": {"clip_model": "qeuopt-tiny:clip"}}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes. SQLite's companions
    of a database in write-ahead-log mode are left out while they hold no data: a reader
    creates an empty ``-wal`` and a ``-shm`` index (rewritten by readers too) on opening."""

    def transient(path: Path) -> bool:
        return path.name.endswith("-shm") or (path.name.endswith("-wal") and path.stat().st_size == 0)

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
        if not (p.is_file() and transient(p))
    }


def tiny_data(**changes):
    data = study_data(**changes)
    for section, values in TINY.items():
        data[section] = {**values, **data.get(section, {})}
    return data


def write_study(folder: Path, data) -> Path:
    path = folder / "study.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def with_factor(name, levels):
    data = tiny_data()
    data["factors"][name] = levels
    return data


def png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(out, "PNG")
    return out.getvalue()


def files(**contents):
    """Files to put in the working folder before the command: name -> bytes, or None for a folder."""
    return contents


# data, files in the folder, text the message must contain (the field, in backticks)
STUDY_FILES = [
    ("guidance inf in factors", with_factor("guidance", [6.0, math.inf, 9.0]), {}, "`factors.guidance`"),
    (
        "guidance inf in generation",
        {
            **tiny_data(factors={"style_a": ["a", "b"], "style_b": ["c", "d"]}),
            "generation": {**TINY["generation"], "guidance": math.inf},
        },
        {},
        "`generation.guidance`",
    ),
    ("guidance nan", with_factor("guidance", [6.0, math.nan, 9.0]), {}, "`factors.guidance`"),
    ("guidance too large", with_factor("guidance", [6.0, 8.0, 1e6]), {}, "`factors.guidance`"),
    ("guidance negative", with_factor("guidance", [-1.0, 8.0, 9.0]), {}, "`factors.guidance`"),
    ("strength above 1", with_factor("strength", [0.2, 0.5, 1.5]), {}, "`factors.strength`"),
    ("strength inf", with_factor("strength", [0.2, 0.5, math.inf]), {}, "`factors.strength`"),
    ("steps 0", tiny_data(generation={"steps": 0}), {}, "`generation.steps`"),
    ("steps huge", tiny_data(generation={"steps": 100000}), {}, "`generation.steps`"),
    ("width huge", tiny_data(generation={"width": 100000}), {}, "`generation.width`"),
    ("height not multiple of 8", tiny_data(generation={"height": 500}), {}, "`generation.height`"),
    ("grid too many images", tiny_data(generation={"grid": [100, 100]}), {}, "`generation.grid`"),
    (
        "grid too many megapixels",
        tiny_data(generation={"grid": [4, 4], "width": 4096, "height": 4096}),
        {},
        "`generation.grid`",
    ),
    ("seed negative", tiny_data(generation={"seed": -1}), {}, "`generation.seed`"),
    ("trials too many", tiny_data(design={"kind": "optuna", "trials": 10**7}), {}, "`design.trials`"),
    ("style level nan", with_factor("style_a", ["x", math.nan, "y"]), {}, "`factors.style_a`"),
    ("name escapes the folder", tiny_data(name="../../escaped"), {}, "`name`"),
    ("name with a slash", tiny_data(name="a/b"), {}, "`name`"),
    ("name hidden", tiny_data(name=".hidden"), {}, "`name`"),
    ("experiment with newline", tiny_data(tracking={"experiment": "bad\nname"}), {}, "`tracking.experiment`"),
    (
        "factor name with a dot",
        {**tiny_data(prompt={"template": "x {a.b}"}), "factors": {"a.b": ["x", "y"]}},
        {},
        "`prompt.template`",
    ),
    (
        "factor name starting with digit",
        {
            **tiny_data(prompt={"template": "x {style_a} {style_b}"}),
            "factors": {"style_a": ["p", "q"], "style_b": ["r", "s"], "1x": ["u", "v"]},
        },
        {},
        "`factors.1x`",
    ),
    ("template unbalanced brace", tiny_data(prompt={"template": "a {style_a} and {style_b"}), {}, "`prompt.template`"),
    (
        "template stray closing brace",
        tiny_data(prompt={"template": "a {style_a} } {style_b}"}),
        {},
        "`prompt.template`",
    ),
    ("template positional", tiny_data(prompt={"template": "a {style_a} {style_b} {}"}), {}, "`prompt.template`"),
    ("template conversion", tiny_data(prompt={"template": "a {style_a!r} {style_b}"}), {}, "`prompt.template`"),
    ("scoring text unbalanced", tiny_data(scoring={"text": "a {style_a"}), {}, "`scoring.text`"),
    (
        "init image not an image",
        tiny_data(generation={"mode": "img2img", "init_image": "init.png"}),
        files(**{"init.png": b"this is not a picture"}),
        "`generation.init_image`",
    ),
    (
        "init image truncated",
        tiny_data(generation={"mode": "img2img", "init_image": "init.png"}),
        files(**{"init.png": png_bytes()[:60]}),
        "`generation.init_image`",
    ),
    ("mlflow uri two slashes", tiny_data(tracking={"mlflow_uri": "sqlite://mlflow.db"}), {}, "`tracking.mlflow_uri`"),
    ("mlflow uri no scheme", tiny_data(tracking={"mlflow_uri": "mlflow.db"}), {}, "`tracking.mlflow_uri`"),
    (
        "mlflow uri folder missing",
        tiny_data(tracking={"mlflow_uri": "sqlite:///nowhere/mlflow.db"}),
        {},
        "`tracking.mlflow_uri`",
    ),
    (
        "mlflow uri absolute",
        tiny_data(tracking={"mlflow_uri": "sqlite:////tmp/elsewhere.db"}),
        {},
        "`tracking.mlflow_uri`",
    ),
    ("mlflow uri http without host", tiny_data(tracking={"mlflow_uri": "http://"}), {}, "`tracking.mlflow_uri`"),
    ("mlflow uri bad port", tiny_data(tracking={"mlflow_uri": "http://host:99999999/"}), {}, "`tracking.mlflow_uri`"),
    (
        "mlflow uri driver missing",
        tiny_data(tracking={"mlflow_uri": "mssql://u:p@host/db"}),
        {},
        "`tracking.mlflow_uri`",
    ),
    ("mlflow db is a folder", tiny_data(), files(**{"mlflow.db": None}), "`tracking.mlflow_uri`"),
    (
        "optuna storage unknown scheme",
        tiny_data(tracking={"optuna_storage": "redis://localhost"}),
        {},
        "`tracking.optuna_storage`",
    ),
    (
        "optuna storage in memory",
        tiny_data(tracking={"optuna_storage": "sqlite:///:memory:"}),
        {},
        "`tracking.optuna_storage`",
    ),
    (
        "optuna storage driver missing",
        tiny_data(tracking={"optuna_storage": "mysql://u@host/db"}),
        {},
        "`tracking.optuna_storage`",
    ),
    (
        "optuna storage malformed",
        tiny_data(tracking={"optuna_storage": "postgresql://u@host:port/db"}),
        {},
        "`tracking.optuna_storage`",
    ),
    ("output dir is a file", tiny_data(tracking={"output_dir": "afile"}), files(afile=b"x"), "`tracking.output_dir`"),
    (
        "output dir under a file",
        tiny_data(tracking={"output_dir": "afile/out"}),
        files(afile=b"x"),
        "`tracking.output_dir`",
    ),
    ("output dir climbs out", tiny_data(tracking={"output_dir": "../out"}), {}, "`tracking.output_dir`"),
    ("output dir absolute", tiny_data(tracking={"output_dir": "/tmp/qeuopt-out"}), {}, "`tracking.output_dir`"),
    (
        "artifact dir under a file",
        tiny_data(tracking={"artifact_dir": "afile/art"}),
        files(afile=b"x"),
        "`tracking.artifact_dir`",
    ),
    ("ratings db is a folder", tiny_data(tracking={"ratings_db": "rdb"}), files(rdb=None), "`tracking.ratings_db`"),
    ("ratings db climbs out", tiny_data(tracking={"ratings_db": "sub/../../r.db"}), {}, "`tracking.ratings_db`"),
    ("ratings db URL outside", tiny_data(tracking={"ratings_db": "sqlite:////tmp/r.db"}), {}, "`tracking.ratings_db`"),
    ("ratings db in memory", tiny_data(tracking={"ratings_db": "sqlite://"}), {}, "`tracking.ratings_db`"),
    ("ratings db of another kind", tiny_data(tracking={"ratings_db": "mysql://u@h/r"}), {}, "`tracking.ratings_db`"),
    ("hub model not cached offline", tiny_data(generation={"model": "nobody/missing-model"}), {}, "`generation.model`"),
    ("clip model not cached offline", tiny_data(scoring={"clip_model": "clip-ViT-B-99"}), {}, "`scoring.clip_model`"),
    ("local model missing", tiny_data(generation={"model": "./missing.safetensors"}), {}, "`generation.model`"),
]


def _put(folder: Path, contents) -> None:
    for name, data in contents.items():
        if data is None:
            (folder / name).mkdir()
        else:
            (folder / name).write_bytes(data)


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("case, data, contents, field", STUDY_FILES, ids=[c[0] for c in STUDY_FILES])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_bad_study_file_exits_2_naming_the_field(workdir, offline, capsys, command, case, data, contents, field):
    _put(workdir, contents)
    path = write_study(workdir, data)
    before = snapshot(workdir)
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qeuopt: invalid study") and field in err, err
    assert snapshot(workdir) == before


RAW_FILES = [  # study files that are not TOML text: bytes, text the message must contain
    ("latin-1 study file", 'name = "caf\xe9"\n'.encode("latin-1"), "not UTF-8"),
    ("a PNG as study file", png_bytes(), "not UTF-8"),
    ("TOML syntax error", b"name = [unclosed\n", "not valid TOML"),
]


@pytest.mark.parametrize("case, raw, words", RAW_FILES, ids=[c[0] for c in RAW_FILES])
@pytest.mark.parametrize("command", ["run", "validate", "rate"])
def test_unreadable_study_file_exits_2_naming_the_file(workdir, capsys, command, case, raw, words):
    (workdir / "study.toml").write_bytes(raw)
    before = snapshot(workdir)
    assert main([command, "study.toml"]) == 2
    err = capsys.readouterr().err
    assert "study.toml" in err and words in err, err
    assert snapshot(workdir) == before


def test_missing_study_file(workdir, capsys):
    assert main(["run", "nope.toml"]) == 2
    assert "`nope.toml`" in capsys.readouterr().err
    assert snapshot(workdir) == {}


CLI_ARGUMENTS = [  # argv after writing a valid study.toml, exit code, text in stderr
    (["ratings", "scores", "study.toml", "--rating-weight", "2"], 2, "--rating-weight"),
    (["steer", "study.toml", "--batch", "0"], 2, "--batch"),
    (["export", "study.toml", "--format", "xml"], 2, "--format"),
    (["export", "study.toml", "--format", "csv", "--top", "0"], 2, "--top"),
    (["recommend", "study.toml", "--top", "-3"], 2, "--top"),
    (["rate", "study.toml", "--no-browser", "--port", "0"], 1, "`study`"),
    (["ratings", "import", "study.toml", "missing.csv"], 2, "`csv`"),
]


@pytest.mark.parametrize("argv, code, words", CLI_ARGUMENTS, ids=[" ".join(a[:2]) + a[-1] for a, _, _ in CLI_ARGUMENTS])
def test_bad_cli_arguments(workdir, capsys, argv, code, words):
    write_study(workdir, tiny_data())
    before = snapshot(workdir)
    try:
        got = main(argv)
    except SystemExit as exit_:  # argparse
        got = exit_.code
    assert got == code
    assert words in capsys.readouterr().err
    assert snapshot(workdir) == before


def _study(**changes):
    from qeuopt.run.study import Study

    data = tiny_data(**changes)
    return Study(data.pop("name"), data.pop("prompt"), data.pop("factors"), **data)


def _optimize(**kwargs):
    from qeuopt.run.rounds import optimize

    return optimize({"a": [1, 2, 3], "b": ["x", "y", "z"]}, kwargs.pop("evaluate", lambda c: 1.0), **kwargs)


def _rank(top):
    import pandas as pd

    from qeuopt.recommend.rank import rank

    frame = pd.DataFrame({"a": [1, 2, 3], "clip": [0.1, 0.2, 0.3]})
    return rank({"a": [1, 2, 3]}, frame, "clip", top=top)


def _rank_empty():
    import pandas as pd

    from qeuopt.recommend.rank import rank

    return rank({"a": [1, 2, 3]}, pd.DataFrame({"a": [1, 2], "clip": [None, None]}), "clip")


def _generate(**settings):
    """Settings built by hand, past every study check: the generator still refuses them
    before it loads a model."""
    from qeuopt.config.spec import GenerationSettings
    from qeuopt.generate.diffusion import DiffusionGenerator

    bad = GenerationSettings(model="qeuopt-tiny:sd", **settings)
    return DiffusionGenerator(bad).generate("a cat", "", bad, [1])


def _unfitted():
    import numpy as np

    from qeuopt.model.tmethod import TMethodRegressor

    return TMethodRegressor().predict(np.ones((2, 2)))


def _run_with(**tracking):
    from qeuopt.testing.fake import FakeGenerator, FakeScorer

    return _study(tracking=tracking).run(FakeGenerator(), FakeScorer(), progress=False)


PYTHON_API = [  # callable, exception type, text in the message
    (
        "guidance inf",
        lambda: _study(generation={"guidance": math.inf}, factors={"style_a": ["a", "b"], "style_b": ["c", "d"]}),
        StudyError,
        "`generation.guidance`",
    ),
    ("name escapes", lambda: _study(name="../escaped"), StudyError, "`name`"),
    (
        "level nan",
        lambda: _study(factors={**study_data()["factors"], "guidance": [6.0, math.nan, 9.0]}),
        StudyError,
        "`factors.guidance`",
    ),
    (
        "run into a file",
        lambda: (Path("afile").write_bytes(b"x"), _run_with(output_dir="afile")),
        StudyError,
        "`tracking.output_dir`",
    ),
    ("run with a bad mlflow uri", lambda: _run_with(mlflow_uri="sqlite://x.db"), StudyError, "`tracking.mlflow_uri`"),
    ("optimize budget 0", lambda: _optimize(budget=0), InputError, "`budget`"),
    ("optimize strategy", lambda: _optimize(budget=3, strategy="grid"), InputError, "`strategy`"),
    (
        "optimize evaluator nan",
        lambda: _optimize(budget=3, strategy="random", evaluate=lambda c: math.nan),
        EvaluationError,
        "`evaluate`",
    ),
    (
        "optimize evaluator inf",
        lambda: _optimize(budget=3, strategy="random", evaluate=lambda c: math.inf),
        EvaluationError,
        "`evaluate`",
    ),
    ("pipeline guidance inf", lambda: _generate(guidance=math.inf), InputError, "`guidance`"),
    ("pipeline width huge", lambda: _generate(width=100000), InputError, "`width`"),
    ("rank top 0", lambda: _rank(0), InputError, "`top`"),
    ("rank no responses", lambda: _rank_empty(), NoDataError, "`observations`"),
    ("model before fit", _unfitted, NotFittedError, "fit"),
]


@pytest.mark.parametrize("case, call, error, words", PYTHON_API, ids=[c[0] for c in PYTHON_API])
def test_bad_python_api_calls(workdir, case, call, error, words):
    before = snapshot(workdir)
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)
    after = snapshot(workdir)
    after.pop("afile", None)
    before.pop("afile", None)
    assert after == before


HEADER = "study,condition,image,rater,rating,updated_at\n"
CSV_FILES = [  # bytes, text in the message
    ("latin-1", (HEADER + "unit,0,0,Zo\xeb,4,\n").encode("latin-1"), "line 2"),
    ("extra cell", (HEADER + "unit,0,0,ann,4,,surplus\n").encode(), "line 2"),
    ("missing cell", (HEADER + "unit,0,0,ann,4,\nunit,0,1,ann\n").encode(), "line 3"),
    ("missing column", b"study,condition,image,rating\nunit,0,0,4\n", "rater"),
    ("rating out of scale", (HEADER + "unit,0,0,ann,7,\n").encode(), "`rating`"),
    ("unknown condition", (HEADER + "unit,99,0,ann,4,\n").encode(), "`condition`"),
    ("image out of range", (HEADER + "unit,0,999,ann,4,\n").encode(), "`image`"),
    ("bad time", (HEADER + "unit,0,0,ann,4,yesterday\n").encode(), "`updated_at`"),
    ("rater with comma", (HEADER + 'unit,0,0,"a,b",4,\n').encode(), "`rater`"),
    ("other study", (HEADER + "other,0,0,ann,4,\n").encode(), "`study`"),
]


@pytest.fixture
def ran(workdir, tmp_path_factory):
    """A finished study in the working folder (copied from one made once per session)."""
    from tests.test_ratings_support import L9_GRID, rated_template, study_copy

    study = study_copy(rated_template(tmp_path_factory.getbasetemp()), workdir, **L9_GRID)
    write_study(workdir, study_data(**L9_GRID))
    return study


@pytest.mark.parametrize("case, raw, words", CSV_FILES, ids=[c[0] for c in CSV_FILES])
def test_bad_ratings_csv_is_refused_with_its_line(ran, workdir, capsys, case, raw, words):
    (workdir / "r.csv").write_bytes(raw)
    before = snapshot(workdir)
    assert main(["ratings", "import", "study.toml", "r.csv"]) == 2
    assert words in capsys.readouterr().err
    assert snapshot(workdir) == before


def test_csv_with_a_byte_order_mark_is_read(ran, workdir, capsys):
    (workdir / "r.csv").write_bytes(b"\xef\xbb\xbf" + b"condition,image,rater,rating\n0,0,ann,4\n")
    assert main(["ratings", "import", "study.toml", "r.csv"]) == 0
    assert "1 row(s) read, 1 stored" in capsys.readouterr().out


def test_rate_on_a_study_that_never_ran_says_so(workdir, capsys):
    write_study(workdir, tiny_data())
    assert main(["rate", "study.toml", "--no-browser", "--port", "0"]) == 1
    assert "no finished condition" in capsys.readouterr().err
    assert sorted(p.name for p in workdir.iterdir()) == ["study.toml"]


def _post(url, body: bytes, headers=None, length=None):
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/api/ratings")
    for key, value in {
        "Content-Type": "application/json",
        "Content-Length": str(length or len(body)),
        **(headers or {}),
    }.items():
        connection.putheader(key, value)
    connection.endheaders(body)
    reply = connection.getresponse()
    status, data = reply.status, json.loads(reply.read())
    connection.close()
    return status, data


GOOD = json.dumps({"rater": "ann", "condition": 0, "image": 0, "rating": 4}).encode()
HTTP_REQUESTS = [  # body, headers, declared length, status, text in the error
    ("deep nesting", b"[" * 1500 + b"]" * 1500, {}, None, 400, "nested"),
    ("deep object", b'{"a":' * 600 + b"1" + b"}" * 600, {}, None, 400, "nested"),
    ("foreign origin", GOOD, {"Origin": "http://evil.example"}, None, 403, "`Origin`"),
    ("null origin", GOOD, {"Origin": "null"}, None, 403, "`Origin`"),
    ("foreign referer", GOOD, {"Referer": "http://evil.example/page"}, None, 403, "`Origin`"),
    ("body shorter than announced", GOOD, {}, len(GOOD) + 50, 408, "announced"),
]


@pytest.mark.parametrize("case, body, headers, length, status, words", HTTP_REQUESTS, ids=[c[0] for c in HTTP_REQUESTS])
def test_bad_http_requests(ran, workdir, monkeypatch, case, body, headers, length, status, words):
    from qeuopt.ratings.server import Handler, RatingServer

    monkeypatch.setattr(Handler, "timeout", 1)
    server = RatingServer(ran, port=0).start()
    try:
        before = snapshot(workdir)
        got, reply = _post(server.url, body, headers, length)
        assert got == status and words in reply["error"], reply
        assert snapshot(workdir) == before
        assert _post(server.url, GOOD, {"Origin": server.url.rstrip("/")})[0] == 200  # still serving
    finally:
        server.stop()


def test_ratings_csv_api_rejects_extra_cells_with_line():
    from qeuopt.ratings.csvfile import read_csv

    with pytest.raises(RatingError, match="line 2"):
        read_csv(io.StringIO(HEADER + "unit,0,0,ann,4,,x\n"), "unit", {0: 2})


def test_no_data_is_its_own_error(workdir):
    from qeuopt.analysis.effects import sn_ratio

    with pytest.raises(NoDataError, match="`values`"):
        sn_ratio([], "larger")


def test_a_client_that_hangs_up_is_no_traceback(caplog):
    from qeuopt.ratings.server import Handler

    handler = Handler.__new__(Handler)  # no socket: only the reply path is exercised
    handler.command, handler.path, handler.client_address = "GET", "/images/0/0", ("127.0.0.1", 1)

    def hung_up(*args):
        raise BrokenPipeError(32, "Broken pipe")

    handler._write = hung_up
    with caplog.at_level("DEBUG", logger="qeuopt.ratings.server"):
        handler._send(200, b"png", "image/png", "no-store")
    assert handler.close_connection and "left before the reply" in caplog.text
    assert "Traceback" not in caplog.text
