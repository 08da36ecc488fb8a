"""The rating server: a small JSON API and the page, on the standard library's HTTP server.

API (every reply is JSON except the page and images; errors are ``{"error": "..."}`` with
a 4xx status naming the field, what is allowed and what was given):

    GET  /                          the page
    GET  /api/study                 {name, scale, grid, size, conditions: [{number, values, prompt, images, seeds}]}
    GET  /api/ratings?rater=NAME    {rater, ratings: [{condition, image, rating}]}  (rating 1..5 or "skip")
    POST /api/ratings               {rater, condition, image, rating}: rating 1..5, "skip", or null to
                                    withdraw; answered only after the rating is committed to disk
    GET  /api/health                {ok, pending_mlflow}: ratings stored but not yet copied to MLflow
    GET  /images/N/K, /images/N/grid  image K (0-based) or the grid of condition N
    GET  /pairs, /api/pairs...      the pairwise page and its API: see :mod:`qeuopt.ratings.pairs`

Only images listed by the study's MLflow runs are served; the request path selects one by
number and never becomes a file path.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from qeuopt.errors import RatingError
from qeuopt.ratings import pairs
from qeuopt.ratings.catalog import Catalog
from qeuopt.ratings.http import HttpError, QuietServer, json_depth
from qeuopt.ratings.preferences import preference_store_for
from qeuopt.ratings.store import SCALE, SKIP, check_position, check_rater
from qeuopt.ratings.sync import rating_sync

log = logging.getLogger(__name__)
MAX_BODY = 4096  # a rating is under 200 bytes
MAX_JSON_DEPTH = 4  # a rating is one flat object; deep nesting only exhausts the parser's stack
TIMEOUT_S = 30  # a connection that sends nothing (or less body than announced) for this long is closed
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript"),
    "/static/common.js": ("common.js", "text/javascript"),
    "/static/app.css": ("app.css", "text/css"),
    **pairs.STATIC,
}
IMAGE_PATH = re.compile(r"^/images/(\d{1,9})/(\d{1,4}|grid)$")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
POLL_S = 0.05  # how soon serve_forever notices a shutdown request


class RatingApp:
    """What the handlers work with: the study, the images it may serve, its ratings."""

    def __init__(self, study, store=None, tracker=None):
        self.study = study
        self.own_store = store is None
        self.store = store or preference_store_for(study.spec)  # ratings and choices: one database
        self.catalog = Catalog(study)
        self.sync = rating_sync(self.store, tracker or study.tracker(), study.name, self.catalog)
        self.pairs = pairs.PairsApp(study.name, self.catalog, self.store, self.sync.tracker)

    def study_info(self) -> dict[str, Any]:
        gen = self.study.spec.generation
        return {
            "name": self.study.name,
            "scale": list(SCALE),
            "grid": list(gen.grid),
            "size": [gen.width, gen.height],
            "conditions": [e.public() for e in self.catalog.entries()],
        }

    def ratings_of(self, rater: str) -> dict[str, Any]:
        rows = self.store.rows(self.study.name, rater=check_rater(rater))
        return {
            "rater": rater,
            "ratings": [
                {
                    "condition": r["condition"],
                    "image": r["image"],
                    "rating": SKIP if r["rating"] is None else r["rating"],
                }
                for r in rows
            ],
        }

    def rate(self, body: Any) -> dict[str, Any]:
        """Store one rating (or withdraw it when ``rating`` is null); returns what was stored."""
        if not isinstance(body, dict):
            raise RatingError(f"request body: a JSON object is allowed; given {type(body).__name__}")
        unknown = set(body) - {"rater", "condition", "image", "rating"}
        if unknown or "rating" not in body:
            raise RatingError(
                "request body: keys rater, condition, image, rating are expected; "
                f"given {', '.join(sorted(body)) or 'none'}"
            )
        rater = check_rater(body.get("rater"))
        condition, image = check_position(body.get("condition"), body.get("image"), self.catalog.known())
        if body["rating"] is None:
            revision = self.store.remove(self.study.name, condition, image, rater)
        else:
            revision = self.store.put(self.study.name, condition, image, rater, body["rating"])
        self.sync.notify()
        return {"rater": rater, "condition": condition, "image": image, "rating": body["rating"], "revision": revision}

    def image_file(self, condition: int, which: str) -> Path:
        entry = self.catalog.get(condition)
        if entry is None:
            raise HttpError(404, f"`condition`: no finished condition {condition} in study {self.study.name!r}")
        if which == "grid":
            return entry.grid
        if int(which) >= len(entry.images):
            raise HttpError(404, f"`image`: condition {condition} has images 0..{len(entry.images) - 1}; given {which}")
        return entry.images[int(which)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries a whole rating session
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "qeuopt-rate"
    timeout = TIMEOUT_S  # socket timeout: idle keep-alive, half-open and short-body connections end
    app: RatingApp  # set on the subclass made by RatingServer

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _not_allowed(self) -> None:
        self._dispatch(self._refuse)

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _refuse(self, path: str) -> None:
        raise HttpError(405, f"method {self.command}: GET and POST are allowed; given {self.command} {path}")

    def _dispatch(self, route) -> None:
        try:
            self._check_host()
            route(urlsplit(self.path).path)
        except (ConnectionError, TimeoutError):  # the client hung up or went silent: nobody to answer
            self.close_connection = True
        except HttpError as err:
            self._error(err.status, str(err))
        except RatingError as err:
            self._error(400, str(err))
        except Exception:  # never a traceback to the client, never a dead server
            log.exception("request %s %s failed", self.command, self.path)
            self._error(500, "internal error; the server log has the details")

    def _check_host(self) -> None:
        """On loopback, refuse other host names: a web page cannot reach us by DNS rebinding."""
        bound = self.server.server_address[0]
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if bound in LOOPBACK and host not in LOOPBACK:
            raise HttpError(403, f"`Host`: {', '.join(LOOPBACK)} are allowed; given {host!r}")

    def _check_origin(self) -> None:
        """A state-changing request from a browser must come from our own page: its Origin (or,
        without one, its Referer) names the host it was sent to. Clients that are not browsers
        send neither and are let through."""
        sender = self.headers.get("Origin") or self.headers.get("Referer")
        if sender is None:
            return
        if sender == "null" or urlsplit(sender).netloc.lower() != (self.headers.get("Host") or "").lower():
            raise HttpError(
                403,
                f"`Origin`: only this server's own page may post ratings "
                f"(http://{self.headers.get('Host')}); given {sender!r}",
            )

    def _get(self, path: str) -> None:
        if path in STATIC:
            name, kind = STATIC[path]
            self._send(200, resources.files("qeuopt.ratings").joinpath("static", name).read_bytes(), kind, "no-cache")
        elif path == "/api/study":
            self._json(200, self.app.study_info())
        elif path == "/api/ratings":
            raters = parse_qs(urlsplit(self.path).query).get("rater", [""])
            self._json(200, self.app.ratings_of(raters[0]))
        elif path == "/api/pairs" or path.startswith("/api/pairs/"):
            self._json(200, self.app.pairs.get(path, parse_qs(urlsplit(self.path).query)))
        elif path == "/api/health":
            self._json(200, {"ok": True, "pending_mlflow": self.app.sync.pending()})
        elif match := IMAGE_PATH.match(path):
            data = self.app.image_file(int(match[1]), match[2]).read_bytes()
            self._send(200, data, "image/png", "max-age=86400")  # a condition's files never change
        else:
            raise HttpError(404, f"no such page: {path}")

    def _post(self, path: str) -> None:
        if path not in ("/api/ratings", "/api/pairs"):
            status = 405 if path in STATIC or path.startswith("/api/") else 404
            raise HttpError(status, f"POST is allowed on /api/ratings and /api/pairs only; given {path}")
        self._check_origin()
        if self.headers.get_content_type() != "application/json":  # also forces a CORS preflight
            raise HttpError(
                415, f"`Content-Type`: application/json is allowed; given {self.headers.get_content_type()}"
            )
        self._json(200, (self.app.pairs.choose if path == "/api/pairs" else self.app.rate)(self._body()))

    def _body(self) -> Any:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            raise HttpError(411, f"`Content-Length`: a byte count is required; given {length!r}")
        if int(length) > MAX_BODY:
            raise HttpError(413, f"request body: at most {MAX_BODY} bytes are allowed; given {length}")
        try:
            data = self.rfile.read(int(length))
        except TimeoutError:
            raise HttpError(
                408, f"request body: {length} bytes were announced and not sent within {TIMEOUT_S} s"
            ) from None
        if len(data) < int(length):
            raise HttpError(400, f"request body: {length} bytes were announced; the client sent {len(data)}")
        if json_depth(data) > MAX_JSON_DEPTH:
            raise HttpError(400, f"request body: JSON nested at most {MAX_JSON_DEPTH} deep is allowed")
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HttpError(400, f"request body: JSON is expected; {err}") from None

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", "no-store")

    def _error(self, status: int, message: str) -> None:
        self.close_connection = True  # an unread body must not be taken for the next request
        self._json(status, {"error": message})

    def _send(self, status: int, body: bytes, kind: str, cache: str) -> None:
        try:
            self._write(status, body, kind, cache)
        except (ConnectionError, TimeoutError):  # the client left before its answer: not our failure
            self.close_connection = True
            log.debug("client %s left before the reply to %s %s", self.address_string(), self.command, self.path)

    def _write(self, status: int, body: bytes, kind: str, cache: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # quiet: one line per image would drown the terminal
        log.debug("%s " + format, self.address_string(), *args)


class RatingServer:
    """A rating server for one study, run in a background thread (``serve_forever`` in the CLI)."""

    def __init__(self, study, host: str = "127.0.0.1", port: int = 8765, store=None, tracker=None):
        self.app = RatingApp(study, store, tracker)
        handler = type("BoundHandler", (Handler,), {"app": self.app})
        self.httpd = QuietServer((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> RatingServer:
        self.app.catalog.start()  # refreshed in the background, never inside a request
        self.app.sync.start()  # first drains what an earlier, killed server left for MLflow
        self.app.pairs.start()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(POLL_S,), name="qeuopt-rate", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.app.catalog.start()
        self.app.sync.start()
        self.app.pairs.start()
        self.httpd.serve_forever(POLL_S)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.sync.stop()
        self.app.pairs.stop()
        self.app.catalog.stop()
        if self.app.own_store:
            self.app.store.close()
