"""The rating server over real HTTP: MLflow sync, concurrent raters, bad requests, a killed
server, and the ``qeuopt ratings`` commands."""

import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tomli_w

from qeuopt.cli.main import main
from qeuopt.config.spec import spec_to_dict
from qeuopt.ratings.server import RatingServer
from qeuopt.ratings.store import RatingStore, ratings_frame
from tests.test_ratings_support import L9_GRID, rated_template, study_copy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(workdir, tmp_path_factory):
    return study_copy(rated_template(tmp_path_factory.getbasetemp()), workdir, **L9_GRID)


@pytest.fixture
def server(study):
    server = RatingServer(study, port=0).start()
    yield server
    server.stop()


def request(url, method, path, body=None, headers=None):
    """(status, decoded JSON or raw bytes) of one request on a new connection."""
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
    reply = connection.getresponse()
    raw = reply.read()
    connection.close()
    is_json = reply.getheader("Content-Type", "").startswith("application/json")
    return reply.status, json.loads(raw) if is_json else raw


def rate(url, rater, condition, image, rating):
    return request(
        url, "POST", "/api/ratings", {"rater": rater, "condition": condition, "image": image, "rating": rating}
    )


def condition_run(study, number):
    runs = study.runs()
    return runs[runs["tags.optuna.trial_number"] == str(number)].iloc[0]


def test_ratings_reach_the_condition_run_in_mlflow(study, server):
    url = server.url
    assert rate(url, "ann", 3, 0, 2)[0] == 200
    assert rate(url, "ann", 3, 0, 4)[0] == 200  # replaces her 2
    assert rate(url, "bob", 3, 0, 5)[0] == 200
    assert rate(url, "bob", 3, 1, 1)[0] == 200
    assert rate(url, "bob", 3, 2, "skip")[0] == 200
    status, mine = request(url, "GET", "/api/ratings?rater=bob")
    assert mine["ratings"] == [
        {"condition": 3, "image": 0, "rating": 5},
        {"condition": 3, "image": 1, "rating": 1},
        {"condition": 3, "image": 2, "rating": "skip"},
    ]
    assert server.app.sync.flush(20)
    run = condition_run(study, 3)
    assert run["metrics.rating_image_00"] == 4.5 and run["metrics.rating_image_01"] == 1.0
    assert (run["metrics.rating_mean"], run["metrics.rating_count"], run["metrics.rating_skips"]) == (10 / 3, 3, 1)
    assert run["tags.qeuopt.raters"] == "ann, bob"
    stored = json.loads((study.tracker().download(run["run_id"], "ratings.json", Path("dl"))).read_text())
    assert {(r["rater"], r["image"], r["rating"]) for r in stored["ratings"]} == {
        ("ann", 0, 4),
        ("bob", 0, 5),
        ("bob", 1, 1),
        ("bob", 2, None),
    }

    assert rate(url, "bob", 3, 1, None) == (
        200,
        {"rater": "bob", "condition": 3, "image": 1, "rating": None, "revision": 6},
    )  # withdrawn (undo)
    assert server.app.sync.flush(20)
    run = condition_run(study, 3)
    assert "metrics.rating_image_01" not in run.index or math.isnan(run["metrics.rating_image_01"])
    assert run["metrics.rating_count"] == 2 and run["metrics.rating_image_00"] == 4.5
    client = study.tracker().client  # removed, not NaN: not in the run, nor in its history
    assert "rating_image_01" not in client.get_run(run["run_id"]).data.metrics
    assert client.get_metric_history(run["run_id"], "rating_image_01") == []
    assert request(url, "GET", "/api/health")[1] == {"ok": True, "pending_mlflow": 0}


def test_concurrent_raters_are_all_kept_apart(study, server):
    raters, failures = [f"rater{k}" for k in range(6)], []

    def session(rater):
        for condition in range(9):
            for image in range(0, 12, 3):
                status, reply = rate(server.url, rater, condition, image, 1 + (condition + image) % 5)
                if status != 200:
                    failures.append(reply)

    threads = [threading.Thread(target=session, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    frame = server.app.store.frame(study.name)
    assert len(frame) == 6 * 9 * 4 and frame.groupby("rater").size().eq(36).all()
    assert server.app.sync.flush(30)
    runs = study.runs()
    assert runs["metrics.rating_count"].eq(6 * 4).all()
    assert set(runs["tags.qeuopt.raters"]) == {", ".join(sorted(raters))}


BAD = [  # method, path, body, extra headers, status, part of the message
    ("POST", "/api/ratings", b"{not json", {}, 400, "JSON is expected"),
    ("POST", "/api/ratings", b"[1, 2]", {}, 400, "a JSON object is allowed"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": 0}, {}, 400, "keys rater, condition"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": 0, "rating": 3, "x": 1}, {}, 400, "keys"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": 0, "rating": 6}, {}, 400, "`rating`"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": 0, "rating": "5"}, {}, 400, "given '5'"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": 0, "rating": 2.5}, {}, 400, "`rating`"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 42, "image": 0, "rating": 3}, {}, 400, "`condition`"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": 12, "rating": 3}, {}, 400, "0..11"),
    ("POST", "/api/ratings", {"rater": "ann", "condition": 0, "image": -1, "rating": 3}, {}, 400, "`image`"),
    ("POST", "/api/ratings", {"rater": "", "condition": 0, "image": 0, "rating": 3}, {}, 400, "`rater`"),
    ("POST", "/api/ratings", {"rater": "a,b", "condition": 0, "image": 0, "rating": 3}, {}, 400, "`rater`"),
    ("POST", "/api/ratings", b"x" * 5000, {}, 413, "at most 4096 bytes"),
    ("POST", "/api/ratings", b'{"rater": "ann"}', {"Content-Type": "text/plain"}, 415, "`Content-Type`"),
    ("POST", "/api/study", b"{}", {}, 405, "POST is allowed on /api/ratings and /api/pairs only"),
    ("POST", "/nowhere", b"{}", {}, 404, "POST is allowed"),
    ("DELETE", "/api/ratings", None, {}, 405, "GET and POST are allowed"),
    ("GET", "/api/ratings?rater=", None, {}, 400, "`rater`"),
    ("GET", "/images/99/0", None, {}, 404, "`condition`"),
    ("GET", "/images/0/12", None, {}, 404, "`image`"),
    ("GET", "/images/0/../../mlflow.db", None, {}, 404, "no such page"),
    ("GET", "/images/0/%2e%2e%2fgrid", None, {}, 404, "no such page"),
    ("GET", "/static/../server.py", None, {}, 404, "no such page"),
    ("GET", "/etc/passwd", None, {}, 404, "no such page"),
    ("GET", "/api/study", None, {"Host": "evil.example:80"}, 403, "`Host`"),
]


@pytest.mark.parametrize(
    "method, path, body, headers, status, message", BAD, ids=[f"{b[0]} {b[1][:20]} {b[4]} {b[5][:16]}" for b in BAD]
)
def test_bad_requests_get_a_4xx_with_a_message(server, method, path, body, headers, status, message):
    got, reply = request(server.url, method, path, body, headers)
    assert (got, message in reply["error"]) == (status, True), reply
    assert "Traceback" not in reply["error"]
    assert request(server.url, "GET", "/api/health")[0] == 200  # still serving


def test_garbage_on_the_socket_does_not_kill_the_server(server):
    host, port = server.httpd.server_address[:2]
    for junk in (
        b"\x00\xff garbage\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"POST /api/ratings HTTP/1.1\r\nContent-Length: nope\r\nContent-Type: application/json\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(junk)
            answer = raw.recv(300)  # a request line with no version gets a bare HTTP/0.9 answer
            assert re.search(rb"HTTP/1\.[01] 4\d\d|Error code: 4\d\d", answer), answer
    assert request(server.url, "GET", "/api/health")[0] == 200


def test_page_and_images_are_served_with_nothing_from_outside(server):
    status, page = request(server.url, "GET", "/")
    assert status == 200 and b'src="/static/app.js"' in page
    for path in ("/", "/static/app.js", "/static/app.css"):
        body = request(server.url, "GET", path)[1]
        assert not re.search(rb"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", body), path  # no CDN, no web fonts
    status, png = request(server.url, "GET", "/images/4/11")
    assert status == 200 and png.startswith(b"\x89PNG")
    assert request(server.url, "GET", "/images/4/grid")[1].startswith(b"\x89PNG")


def _study_file(study, workdir) -> Path:
    path = workdir / "unit.toml"
    path.write_text(tomli_w.dumps(spec_to_dict(study.spec)))
    return path


def start_rate_process(study, workdir) -> tuple[subprocess.Popen, str]:
    """`qeuopt rate` as its own process (to be killed), and the URL it serves."""
    command = [sys.executable, "-u", "-m", "qeuopt.cli.main", "rate", str(_study_file(study, workdir))]
    server = subprocess.Popen(
        [*command, "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    return server, next(m[0] for line in server.stdout if (m := re.search(r"http://\S+", line)))


def kill_midway(server, client, stop: threading.Event, acknowledged, count: int = 150) -> None:
    """Run ``client`` in a thread until ``count`` of its requests were acknowledged, then
    kill -9 the server's process group (no shutdown handler runs), set ``stop`` and join."""
    try:
        thread = threading.Thread(target=client)
        thread.start()
        while len(acknowledged) < count and thread.is_alive():
            time.sleep(0.01)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        stop.set()
        thread.join(10)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_rating(study, workdir):
    server, url = start_rate_process(study, workdir)
    acknowledged, unanswered, stop = [], [], threading.Event()

    def rater():
        for n in range(10_000):
            rating = ("ann" if n % 2 else "bob", n % 9, n % 12, 1 + n % 5)
            if stop.is_set():
                return
            try:
                if rate(url, *rating)[0] == 200:
                    acknowledged.append(rating)
            except (OSError, http.client.HTTPException):  # died under this request: not acknowledged
                unanswered.append(rating)
                return

    kill_midway(server, rater, stop, acknowledged)
    assert len(acknowledged) >= 150
    latest = {(c, i, name): value for name, c, i, value in acknowledged}
    store = RatingStore(workdir / "ratings.db")
    stored = {(r["condition"], r["image"], r["rater"]): r["rating"] for r in store.rows(study.name)}
    for name, c, i, value in unanswered:  # committed just before the kill, maybe: then it is the newest
        if stored.get((c, i, name)) == value:
            latest[(c, i, name)] = value
    assert {k: stored.get(k) for k in latest} == latest  # every acknowledged rating, last value wins
    store.close()

    again = RatingServer(study, port=0).start()  # a restart copies what MLflow missed
    try:
        assert again.app.sync.flush(30)
    finally:
        again.stop()
    counts = study.runs().set_index("tags.optuna.trial_number")["metrics.rating_count"].to_dict()
    for condition in range(9):
        expected = sum(1 for (c, _, _), v in stored.items() if c == condition and v is not None)
        assert counts[str(condition)] == expected


def test_export_and_import_commands_round_trip(study, workdir, capsys):
    store = RatingStore(workdir / "ratings.db")
    store.put(study.name, 0, 0, "ann", 5)
    store.put(study.name, 8, 11, "bob", "skip")
    store.close()
    path = _study_file(study, workdir)
    frame = ratings_frame(study).fillna({"rating": 0})  # a skip is a missing rating
    assert frame[["condition", "image", "rater", "rating"]].values.tolist() == [[0, 0, "ann", 5], [8, 11, "bob", 0]]
    assert main(["ratings", "export", str(path), "-o", "out.csv"]) == 0
    lines = (workdir / "out.csv").read_text().splitlines()
    assert lines[0] == "study,condition,image,rater,rating,updated_at" and len(lines) == 3
    assert lines[2].startswith("unit,8,11,bob,skip,")

    (workdir / "ratings.db").unlink()
    assert main(["ratings", "import", str(path), "out.csv"]) == 0
    assert "2 row(s) read, 2 stored" in capsys.readouterr().out
    assert condition_run(study, 0)["metrics.rating_mean"] == 5.0  # import reached MLflow too
    assert main(["ratings", "export", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == lines

    (workdir / "bad.csv").write_text("condition,image,rater,rating\n0,0,ann,5\n0,99,ann,5\n1,0,ann,0\n")
    assert main(["ratings", "import", str(path), "bad.csv"]) == 2  # a bad file is bad input
    error = capsys.readouterr().err
    assert "line 3: `image`" in error and "line 4: `rating`" in error and "nothing imported" in error

    assert main(["ratings", "scores", str(path)]) == 0
    table = capsys.readouterr().out
    assert "combined" in table and "rating_z" in table
