"""A small threaded HTTP server shared by the device page and ``edgepose view``.

Standard library only (``http.server``): a device needs no web framework for a
page, an MJPEG stream, Server-Sent Events and a few JSON endpoints. Every
request but ``/healthz`` passes :meth:`Auth.check` when credentials are set.
Request lines are logged at debug level only, and headers never.

Bounded against careless or hostile clients: a connection idle (or not
reading) for :data:`IDLE_TIMEOUT_S` is closed, so is one whose request takes
over :data:`REQUEST_DEADLINE_S` to arrive (a byte every few seconds), at most ``max_viewers`` +
:data:`SPARE_CONNECTIONS` are served at once (one more gets a canned 503 and
no thread), the request line and headers of one request are capped
(414 / 431), and only the files shipped in ``static/`` are served, by exact
name, so no spelling of a path (``..``, ``%2e``, ``\\``, NUL) reaches the
file system.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import http.client
import json
import logging
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable

from ..errors import ConfigError
from .config import HttpConfig

log = logging.getLogger(__name__)

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Paths served without credentials: Docker and load balancers probe them, and they reveal nothing.
PUBLIC = frozenset({"/healthz"})
#: Seconds a connection may sit idle, or a viewer not read, before it is closed and its thread freed.
IDLE_TIMEOUT_S = 10.0
#: Seconds from the start of a request (idle keep-alive wait included) to the end of its headers: a client that
#: trickles a byte every few seconds (slowloris) passes every socket timeout, so a reaper thread cuts it here.
REQUEST_DEADLINE_S = 20.0
#: Connections served at once beside the ``max_viewers`` streams: page loads, API polls, scrapes, SSE.
SPARE_CONNECTIONS = 16
#: Longest request line (the stdlib allows 64 KiB; no URL of these pages needs more than a few hundred bytes).
MAX_REQUEST_LINE = 8192
#: Bytes of headers one request may send (nginx's default is 4 x 8 KiB); the stdlib's own cap is 100 lines of 64 KiB each.
MAX_HEADER_BYTES = 32768
#: The answer to a connection beyond ``max_connections``: sent without a thread, then the socket is closed.
_BUSY_BODY = b"too many connections, retry shortly\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def static_names() -> frozenset[str]:
    """The files shipped in ``static/``: the only names ``/static/`` serves."""
    return frozenset(f.name for f in resources.files(__package__).joinpath("static").iterdir() if f.is_file())


class _CappedReader:
    """``rfile`` with a byte budget for one request's headers; over it, parse_headers fails and the stdlib answers 431."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.left: int | None = None  # None: no budget (the request line has its own cap)

    def readline(self, limit: int = -1) -> bytes:
        if self.left is None:
            return bytes(self.raw.readline(limit))
        line = bytes(self.raw.readline(min(limit, self.left + 1) if limit >= 0 else self.left + 1))
        self.left -= len(line)
        if self.left < 0:
            raise http.client.HTTPException(f"headers over {MAX_HEADER_BYTES} bytes")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class Auth:
    """Bearer token and/or basic-auth pair; no credentials means open (loopback only, see :meth:`HttpConfig.credentials`)."""

    def __init__(self, token: str | None = None, basic: tuple[str, str] | None = None):
        self._token = token.encode() if token else None
        self._basic = (basic[0].encode(), basic[1].encode()) if basic else None

    @property
    def required(self) -> bool:
        return self._token is not None or self._basic is not None

    def check(self, header: str | None) -> bool:
        if not self.required:
            return True
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self._token is not None:
            return hmac.compare_digest(value.strip().encode(), self._token)
        if scheme == "basic":
            try:
                user, _, pw = base64.b64decode(value.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            ok = False
            if self._basic is not None:
                # Both compared every time: the answer's timing says nothing about which part was wrong.
                ok = hmac.compare_digest(user, self._basic[0]) & hmac.compare_digest(pw, self._basic[1])
            if self._token is not None:
                ok |= hmac.compare_digest(pw, self._token)
            return ok
        return False


Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"
    server_version = "edgepose"
    sys_version = ""

    raw_requestline: bytes
    # The socket timeout covers reads (an idle keep-alive connection, a slow request) and writes
    # (a viewer that stopped reading): either way the thread is freed after IDLE_TIMEOUT_S.
    timeout = IDLE_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        self.rfile = _CappedReader(self.rfile)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        self.server.watch(self)  # the request line and headers must arrive within REQUEST_DEADLINE_S
        try:
            super().handle_one_request()
        finally:
            self.server.unwatch(self)

    def parse_request(self) -> bool:
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414, f"request line over {MAX_REQUEST_LINE} bytes")
            return False
        self.rfile.left = MAX_HEADER_BYTES  # type: ignore[attr-defined]
        try:
            return super().parse_request()
        finally:
            self.rfile.left = None  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        # Escaped: a request line is the client's text and must not drive the operator's terminal.
        log.debug("%s %s", self.address_string(), _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", format % args))

    def do_GET(self) -> None:  # the stdlib's name
        self.server.unwatch(self)  # the request has arrived; a route (a stream) may run as long as it likes
        path = self.path.split("?", 1)[0]
        if path not in PUBLIC and not self.server.auth.check(self.headers.get("Authorization")):
            body = b"authorization required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="edgepose", charset="UTF-8"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        route = self.server.routes.get(path)
        try:
            if route is not None:
                route(self)
            elif path.startswith("/static/"):
                self.send_static(path[len("/static/") :])
            else:
                self.send_bytes(404, b"not found\n", "text/plain; charset=utf-8")
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the viewer left

    do_HEAD = do_GET

    # -- helpers for routes ------------------------------------------------------------
    def send_bytes(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj: Any, code: int = 200) -> None:
        self.send_bytes(code, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    def send_static(self, name: str) -> None:
        # By exact name from the shipped list: nothing the client spells is handed to the file system.
        if name not in self.server.static:
            self.send_bytes(404, b"not found\n", "text/plain; charset=utf-8")
            return
        f = resources.files(__package__).joinpath("static").joinpath(name)
        ext = "." + name.rsplit(".", 1)[-1]
        self.send_bytes(200, f.read_bytes(), STATIC_TYPES.get(ext, "application/octet-stream"))


class WebServer(ThreadingHTTPServer):
    """Serves ``routes`` (path -> function of the handler) on ``cfg.host:cfg.port`` from a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's backlog is 5: in a burst (a fleet page reloading, a scraper, a reconnecting viewer) the kernel
    # drops further SYNs and each client waits out 1 s, 3 s... retransmits (200 connections: 27.6 s with 5, 0.04 s
    # with 511, as nginx). Beyond max_connections they get a 503 at once.
    request_queue_size = 511

    def __init__(self, cfg: HttpConfig, routes: dict[str, Route], what: str = "edgepose"):
        token, basic = cfg.credentials()  # the binding rule, before anything listens
        self.auth = Auth(token, basic)
        self.routes = routes
        self.what = what
        self.static = static_names()
        self.max_connections = cfg.max_viewers + SPARE_CONNECTIONS
        self._active = 0
        self._active_lock = threading.Lock()
        self._refused_logged = 0.0
        self._watched: dict[Handler, float] = {}
        self._reaper_stop = threading.Event()
        try:
            super().__init__((cfg.host, cfg.port), Handler)
        except OSError as e:
            raise ConfigError(
                f"cannot listen on http {cfg.host}:{cfg.port} ({e.strerror or e}).",
                "choose a free http.port, or stop what holds it.",
            ) from None
        self._thread: threading.Thread | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            full = self._active >= self.max_connections
            if not full:
                self._active += 1
        if not full:
            super().process_request(request, client_address)
            return
        try:
            request.setblocking(False)  # never wait on this client: the accept loop serves everyone
            request.send(BUSY)
        except OSError:
            pass
        self.shutdown_request(request)
        now = time.monotonic()
        if now - self._refused_logged > 60.0:  # one line a minute, not one per connection
            self._refused_logged = now
            log.warning(
                "%s %d connections open (http.max_viewers + %d); refusing more with 503 until some close "
                "(idle ones close after %g s). Fix: find the client holding them open, or raise http.max_viewers for real viewers.",
                self.what,
                self.max_connections,
                SPARE_CONNECTIONS,
                IDLE_TIMEOUT_S,
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The stdlib prints a traceback to stderr; a client that left (or was cut off) is not worth one.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("%s: %s", client_address, exc)
            return
        log.warning(
            "%s request from %s failed: %s: %s",
            self.what,
            client_address[0],
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )

    def watch(self, h: Handler) -> None:
        with self._active_lock:
            self._watched[h] = time.monotonic()

    def unwatch(self, h: Handler) -> None:
        with self._active_lock:
            self._watched.pop(h, None)

    def _reap(self) -> None:
        while not self._reaper_stop.wait(1.0):
            now = time.monotonic()
            with self._active_lock:
                late = [h for h, t in self._watched.items() if now - t > REQUEST_DEADLINE_S]
                for h in late:
                    del self._watched[h]
            for h in late:
                log.debug("%s: request not complete after %g s, closing", h.address_string(), REQUEST_DEADLINE_S)
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)  # the handler's blocked read returns, its thread ends
                except OSError:
                    pass

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1

    @property
    def connections(self) -> int:
        """Connections being served now (each holds a thread)."""
        return self._active

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host if ':' not in str(host) else f'[{host}]'}:{port}/"

    def start(self) -> WebServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="edgepose-http", daemon=True
        )
        self._thread.start()
        threading.Thread(target=self._reap, name="edgepose-http-reaper", daemon=True).start()
        log.info("%s web page on %s%s", self.what, self.url, " (credentials required)" if self.auth.required else "")
        return self

    def stop(self) -> None:
        self._reaper_stop.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(2.0)


def page(name: str) -> Route:
    """A route serving one static HTML file."""
    return lambda h: h.send_static(name)
