"""systemd readiness and watchdog notifications (the ``sd_notify`` protocol, no library needed).

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a Unix datagram socket,
``@name`` for the abstract namespace); with ``WatchdogSec=`` it also passes
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Mapping

log = logging.getLogger(__name__)

#: Set once this process has told systemd it is ready: start-up is over (see :func:`extend_startup`).
_started = False


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET") or None
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]
        self._addr = addr
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_interval: float | None = None
        if usec and (not pid or pid == str(os.getpid())):
            try:
                self.watchdog_interval = int(usec) / 1e6 or None
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r (not an integer)", usec)

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines (e.g. ``READY=1``); False outside systemd or when the socket is gone."""
        if self._addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode("utf-8"), self._addr)
            return True
        except OSError as e:
            log.debug("sd_notify to %r failed: %s", self._addr, e)
            return False

    def ready(self, status: str | None = None) -> bool:
        global _started
        _started = True
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def extend_startup(seconds: float, status: str) -> bool:
    """While starting under systemd (``Type=notify``, before ``READY=1``): ask for ``seconds`` more
    (``EXTEND_TIMEOUT_USEC``) and say why. For work that is quick on a warm cache and takes minutes on a
    slow board on a cold one (numba compiling after a new version or a wiped cache): without it,
    ``TimeoutStartSec`` kills the start, and the restart compiles again. A no-op after ``READY=1``, where
    it would only lengthen the watchdog, and outside systemd."""
    if _started:
        return False
    n = SystemdNotifier()
    try:
        return n.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}", f"STATUS={status}")
    finally:
        n.close()
