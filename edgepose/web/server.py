"""A small threaded HTTP server shared by the device page and ``edgepose view``.

Standard library only (``http.server``): a device needs no web framework for a
page, an MJPEG stream, Server-Sent Events and a few JSON endpoints. Every
request but ``/healthz`` passes :meth:`Auth.check` when credentials are set.
Request lines are logged at debug level only, and headers never.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable

from ..errors import ConfigError
from .config import HttpConfig

log = logging.getLogger(__name__)

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".txt": "text/plain; charset=utf-8", ".svg": "image/svg+xml"}
#: Paths served without credentials: Docker and load balancers probe them, and they reveal nothing.
PUBLIC = frozenset({"/healthz"})


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

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # the stdlib's name
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
                self.send_static(path[len("/static/"):])
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
        if "/" in name or name.startswith("."):
            self.send_bytes(404, b"not found\n", "text/plain; charset=utf-8")
            return
        f = resources.files(__package__).joinpath("static").joinpath(name)
        if not f.is_file():
            self.send_bytes(404, b"not found\n", "text/plain; charset=utf-8")
            return
        ext = "." + name.rsplit(".", 1)[-1]
        self.send_bytes(200, f.read_bytes(), STATIC_TYPES.get(ext, "application/octet-stream"))


class WebServer(ThreadingHTTPServer):
    """Serves ``routes`` (path -> function of the handler) on ``cfg.host:cfg.port`` from a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cfg: HttpConfig, routes: dict[str, Route], what: str = "edgepose"):
        token, basic = cfg.credentials()  # the binding rule, before anything listens
        self.auth = Auth(token, basic)
        self.routes = routes
        self.what = what
        try:
            super().__init__((cfg.host, cfg.port), Handler)
        except OSError as e:
            raise ConfigError(f"cannot listen on http {cfg.host}:{cfg.port} ({e.strerror or e}).",
                              "choose a free http.port, or stop what holds it.") from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host if ':' not in str(host) else f'[{host}]'}:{port}/"

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="edgepose-http", daemon=True)
        self._thread.start()
        log.info("%s web page on %s%s", self.what, self.url, " (credentials required)" if self.auth.required else "")
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(2.0)


def page(name: str) -> Route:
    """A route serving one static HTML file."""
    return lambda h: h.send_static(name)
