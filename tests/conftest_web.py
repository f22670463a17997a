"""Fixtures for the web tests: Debian's headless Chromium driven by Selenium, and small HTTP helpers (waits: tests.procs.wait_until)."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: The flags of the brief: no sandbox (root in a container), no GPU, no network chatter, a throw-away profile.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def new_browser(profile: Path, headers: dict[str, str] | None = None) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail("the web tests need Debian's chromium and chromium-driver (.ci/run installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    if headers:
        # Every request of the page (the stream, fetch) carries them, as a proxy in front would add them.
        drv.execute_cdp_cmd("Network.enable", {})
        drv.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
    return drv


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    drv = new_browser(tmp_path / "chromium-profile")
    yield drv
    drv.quit()


def element_image(el: Any) -> np.ndarray:
    """A screenshot of one element as a BGR array."""
    png = base64.b64decode(el.screenshot_as_base64)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    code, body, _ = get(url, headers)
    assert code == 200, (code, body[:300])
    return json.loads(body)


class FileServer:
    """A directory over HTTP (http.server in a thread) on 127.0.0.1 (``port`` 0: the OS picks one).

    It records the request paths; ``behaviour(handler, n)`` may answer the n-th request itself (return true).
    """

    def __init__(self, directory: Path, behaviour: Callable[[Any, int], bool] | None = None, port: int = 0):
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if behaviour is not None and behaviour(self, len(server.requests)):
                    return
                super().do_GET()

        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(Handler, directory=str(directory))
        )
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server() -> Iterator[Callable[..., FileServer]]:
    """``file_server(directory, behaviour=None, port=0)`` starts a :class:`FileServer`; all are closed after the test."""
    servers: list[FileServer] = []

    def start(directory: Path, behaviour: Callable[[Any, int], bool] | None = None, port: int = 0) -> FileServer:
        servers.append(FileServer(directory, behaviour, port))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
