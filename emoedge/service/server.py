"""The run's HTTP server: the live page, its MJPEG streams, /metrics, /healthz, /readyz and /api/streams.

Python's threading HTTP server, one thread per connection: a watcher of a stream holds its own thread, and a slow
watcher only ever waits on its own socket (it gets the stream's newest frame when it is ready for one: `LiveFrame`).
The server is bound before the model loads (a taken port is one line at once) and answers from then on: health
"starting", readiness 503, until the engine is attached.

Every request carries the token when one is set (`Authorization: Bearer TOKEN`, or `?token=TOKEN` for the page and
its image streams, which a browser cannot give headers), compared in constant time. Every error is a 4xx/5xx with a
JSON body `{"error": "..."}` of one line; nothing logged or answered holds a stream URL's credentials or the token.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url
from emoedge.runtime.streams import ID
from emoedge.service import api, health, metrics
from emoedge.service.settings import Address

if TYPE_CHECKING:
    from emoedge.runtime.engine import Engine

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0  # an add or remove waits this long for the loop to apply it between ticks
FRAME_WAIT_S = 1.0  # a stream's watcher looks at the server's state at least this often
SNAPSHOT_WAIT_S = 5.0  # /streams/ID.jpg waits this long for a frame
SEND_TIMEOUT_S = 10.0  # a watcher that takes no bytes for this long is dropped
JPEG_QUALITY = 80
BOUNDARY = "emoedge-frame"

Route = Callable[["_Handler", "re.Match[str]"], None]


class HttpService:
    """The server of one run (see the module docstring): `HttpService(address)` binds and starts answering;
    `attached(engine)` serves that engine while entered; `close()` stops it. Use as a context manager."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.engine: Engine | None = None
        self.closing = False
        self.page = resources.files("emoedge.service").joinpath("page.html").read_bytes()
        try:
            self._server = _Server(self, (address.host, address.port))
        except OSError as exc:
            why = "the port is taken (another run?)" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise EmoedgeError(f"--http {address.host}:{address.port}: cannot listen: {why}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="emoedge-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.address.url

    @contextmanager
    def attached(self, engine: Engine) -> Iterator[HttpService]:
        """Serve `engine` while entered (an observer of `emoedge.runtime.engine.run`)."""
        self.engine = engine
        log.warning("serving on %s", self.url)
        try:
            yield self
        finally:
            self.closing = True  # every stream's watcher lets go within FRAME_WAIT_S

    def close(self) -> None:
        self.closing = True
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a watcher's thread never holds the process open

    def __init__(self, service: HttpService, address: tuple[str, int]) -> None:
        self.service = service
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "emoedge"
    sys_version = ""

    # ------------------------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch(GET)

    def do_POST(self) -> None:
        self._dispatch(POST)

    def do_DELETE(self) -> None:
        self._dispatch(DELETE)

    def do_PUT(self) -> None:
        self._dispatch({})

    def do_PATCH(self) -> None:
        self._dispatch({})

    def _dispatch(self, routes: dict[re.Pattern[str], Route]) -> None:
        self.close_connection = True  # one request per connection: simple, and plenty for a page and a scraper
        service = self.server.service
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query)
        try:
            if not self._authorised(service.address.token):
                return
            for pattern, route in routes.items():
                match = pattern.fullmatch(parts.path)
                if match:
                    route(self, match)
                    return
            known = any(p.fullmatch(parts.path) for table in (GET, POST, DELETE) for p in table)
            if known:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed on {parts.path}")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {parts.path[:100]}")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client went away
        except Exception as exc:  # a bug must not end the server, nor show a traceback to the client
            log.warning("HTTP %s %s: %s: %s", self.command, parts.path[:100], type(exc).__name__, redact_url(str(exc)))
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (logged by the run)")

    def _authorised(self, token: str | None) -> bool:
        if token is None:
            return True
        header = self.headers.get("Authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else (self.query.get("token") or [""])[0]
        if not given:
            self._error(HTTPStatus.UNAUTHORIZED, "token required: Authorization: Bearer TOKEN, or ?token=TOKEN")
            return False
        if not hmac.compare_digest(given.encode(), token.encode()):
            self._error(HTTPStatus.FORBIDDEN, "wrong token")
            return False
        return True

    # ------------------------------------------------------------------------------------ pages
    def page(self, _match: re.Match[str]) -> None:
        self._send(HTTPStatus.OK, self.server.service.page, "text/html; charset=utf-8")

    def healthz(self, _match: re.Match[str]) -> None:
        self._json(*health.health(self.server.service.engine))

    def readyz(self, _match: re.Match[str]) -> None:
        self._json(*health.readiness(self.server.service.engine))

    def metrics(self, _match: re.Match[str]) -> None:
        engine = self._engine()
        if engine is not None:
            self._send(HTTPStatus.OK, metrics.exposition(engine), metrics.CONTENT_TYPE)

    # ------------------------------------------------------------------------------------ the streams API
    def list_streams(self, _match: re.Match[str]) -> None:
        engine = self._engine()
        if engine is not None:
            self._json(HTTPStatus.OK, {"streams": [api.view_json(view) for view in engine.views()]})

    def add_stream(self, _match: re.Match[str]) -> None:
        engine = self._engine()
        body = self._body()
        if engine is None or body is None:
            return
        try:  # the body, then the request's checks (a taken id first: 409, not 400)
            spec = api.stream_spec(body)
            if any(v.id == spec.id and v.state.partition(":")[0] in RUNNING for v in engine.views()):
                self._error(HTTPStatus.CONFLICT, f"stream id {spec.id!r} is already running")
                return
            added = engine.add(spec)
        except EmoedgeError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        if self._settled(added) is not None:
            view = next(v for v in reversed(engine.views()) if v.id == spec.id)
            self._json(HTTPStatus.CREATED, api.view_json(view))

    def remove_stream(self, match: re.Match[str]) -> None:
        engine = self._engine()
        if engine is None:
            return
        ident = match["id"]
        if not any(v.id == ident and v.state.partition(":")[0] in RUNNING for v in engine.views()):
            self._error(HTTPStatus.NOT_FOUND, f"no running stream {ident!r}")
            return
        if self._settled(engine.remove(ident)) is not None:
            self._json(HTTPStatus.OK, {"removed": ident})

    def _settled(self, future: Any) -> object | None:
        """The result of a command the loop applies between ticks; None once an error has been answered."""
        try:
            return future.result(timeout=COMMAND_TIMEOUT_S)
        except EmoedgeError as exc:
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        except futures.TimeoutError:  # not the built-in TimeoutError before Python 3.11
            self._error(HTTPStatus.GATEWAY_TIMEOUT, f"the run did not apply the change within {COMMAND_TIMEOUT_S:g} s")
        return None

    # ------------------------------------------------------------------------------------ live frames
    def mjpeg(self, match: re.Match[str]) -> None:
        """The stream's annotated frames as they come (multipart/x-mixed-replace: every browser shows it in an img)."""
        live = self._live(match["id"])
        if live is None:
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.connection.settimeout(SEND_TIMEOUT_S)
        service, shown = self.server.service, 0
        with live.watch():
            while not service.closing and not live.closed:
                shown, image = live.next(shown, FRAME_WAIT_S)
                if image is None:
                    continue
                jpeg = _jpeg(image)
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()

    def snapshot(self, match: re.Match[str]) -> None:
        """The stream's next annotated frame as one JPEG."""
        live = self._live(match["id"])
        if live is None:
            return
        with live.watch():
            _, image = live.next(0, SNAPSHOT_WAIT_S)
        if image is None:
            self._error(
                HTTPStatus.SERVICE_UNAVAILABLE, f"stream {match['id']!r}: no frame within {SNAPSHOT_WAIT_S:g} s"
            )
            return
        self._send(HTTPStatus.OK, _jpeg(image), "image/jpeg")

    def _live(self, ident: str) -> Any:
        engine = self._engine()
        if engine is None:
            return None
        live = engine.live_frame(ident)
        if live is None or live.closed:
            self._error(HTTPStatus.NOT_FOUND, f"no running stream {ident!r}")
            return None
        return live

    # ------------------------------------------------------------------------------------ helpers
    def _engine(self) -> Engine | None:
        service = self.server.service
        if service.engine is None or service.closing:
            why = "the run is stopping" if service.closing else "the run is starting (loading the model)"
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, why)
            return None
        return service.engine

    def _body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
            return None
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required: a JSON body {id, source, boxes?}")
            return None
        if int(length) > api.MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes; at most {api.MAX_BODY}")
            return None
        return self.rfile.read(int(length))

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": redact_url(message)})

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests go to the debug log, their paths without the query (it may hold the token)."""
        log.debug("HTTP %s %s -> %s", self.command, urlsplit(self.path).path[:100], args[1] if len(args) > 1 else "")


def _jpeg(image: Any) -> bytes:
    """A BGR frame as JPEG bytes, encoded on the watcher's thread (OpenCV lets go of the GIL meanwhile)."""
    import cv2

    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


RUNNING = ("connecting", "live", "reconnecting", "reading")  # a stream in these states is still in the run
STREAM = ID.pattern

GET: dict[re.Pattern[str], Route] = {
    re.compile(r"/"): _Handler.page,
    re.compile(r"/healthz"): _Handler.healthz,
    re.compile(r"/readyz"): _Handler.readyz,
    re.compile(r"/metrics"): _Handler.metrics,
    re.compile(r"/api/streams"): _Handler.list_streams,
    re.compile(rf"/streams/(?P<id>{STREAM})\.mjpg"): _Handler.mjpeg,
    re.compile(rf"/streams/(?P<id>{STREAM})\.jpg"): _Handler.snapshot,
}
POST: dict[re.Pattern[str], Route] = {re.compile(r"/api/streams"): _Handler.add_stream}
DELETE: dict[re.Pattern[str], Route] = {re.compile(rf"/api/streams/(?P<id>{STREAM})"): _Handler.remove_stream}
