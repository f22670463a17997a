"""Reopen a live source with exponential back-off when it disappears.

The state callback receives a :class:`SourceState` on every change
(``connected``, ``retrying`` with the last error and the delay before the
next attempt, ``failed`` when ``max_attempts`` is used up, ``closed``), which
the service publishes on its status topic.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

from ..errors import SourceError
from ..net import backoff_delays
from ..types import Frame
from .base import FrameSource

log = logging.getLogger(__name__)

StateName = Literal["connecting", "connected", "retrying", "failed", "closed"]


@dataclass(frozen=True)
class SourceState:
    state: StateName
    description: str
    #: Problem text of the error that caused ``retrying`` / ``failed``.
    error: str | None = None
    #: Consecutive failed attempts so far.
    attempt: int = 0
    #: Seconds until the next attempt (``retrying`` only).
    retry_in: float | None = None
    #: Reconnections since the source was first opened.
    reconnects: int = 0
    since: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class RetryingSource(FrameSource):
    """Wraps ``opener()`` (which returns a fresh live source) and reopens it when it fails.

    Frame indices continue across reconnects. ``retry_first_open=False``
    raises the first open's error at once (a CLI run with a wrong device
    should fail fast); the service sets it so a camera plugged in after boot
    is picked up. ``max_attempts=0`` retries forever.
    """

    is_live = True
    close_from_other_thread = True

    def __init__(
        self,
        opener: Callable[[], FrameSource],
        *,
        description: str,
        on_state: Callable[[SourceState], None] | None = None,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        max_attempts: int = 0,
        retry_first_open: bool = False,
        fps: float | None = None,
    ):
        self.opener = opener
        self.description = description
        self.on_state = on_state
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.fps = fps
        self.frame_count = None
        self.reconnects = 0
        self.state = SourceState("connecting", description, since=time.time())
        self._inner: FrameSource | None = None
        self._stop = threading.Event()
        self._index = 0
        self._ever_connected = False
        self._dropped_before = 0
        if not retry_first_open:
            self._inner = opener()  # errors propagate: fail fast
            self._connected()

    # -- state -------------------------------------------------------------
    def _set_state(self, state: SourceState) -> None:
        self.state = state
        if state.state == "retrying":
            # Attempts 1-3, then 4, 8, 16, ... at WARNING: a camera gone for a day at retry_max_s = 0.05 s would
            # otherwise write 20 warnings a second to the journal. The rest are DEBUG (shown with -vv).
            n = state.attempt
            level = logging.WARNING if n <= 3 or n & (n - 1) == 0 else logging.DEBUG
            log.log(level, "%s; retrying in %.2f s (attempt %d)", state.error, state.retry_in or 0, n)
        else:
            log.info("%s: %s", self.description, state.state)
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:  # a broken status publisher must not stop capture
                log.exception("source state callback failed")

    def _connected(self) -> None:
        assert self._inner is not None
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.description = self._inner.description
        self.fps = self._inner.fps or self.fps
        self._set_state(SourceState("connected", self.description, reconnects=self.reconnects, since=time.time()))

    def _connect(self, first_error: SourceError | None) -> bool:
        """Open with back-off; ``False`` if closed meanwhile. Raises when attempts run out."""
        attempt = 0
        error = first_error
        delays = backoff_delays(self.initial_delay, self.max_delay)
        while not self._stop.is_set():
            if error is not None:
                attempt += 1
                if self.max_attempts and attempt > self.max_attempts:
                    self._set_state(
                        SourceState(
                            "failed", self.description, error.problem, attempt - 1, None, self.reconnects, time.time()
                        )
                    )
                    raise SourceError(
                        f"{self.description} is gone and {self.max_attempts} attempts to reopen it failed; last error: {error.problem}",
                        error.fix,
                    )
                delay = next(delays)
                self._set_state(
                    SourceState(
                        "retrying", self.description, error.problem, attempt, delay, self.reconnects, time.time()
                    )
                )
                if self._stop.wait(delay):
                    return False
            try:
                inner = self.opener()
            except SourceError as e:
                error = e
                continue
            if self._stop.is_set():  # closed while opening
                inner.close()
                return False
            self._inner = inner
            self._connected()
            return True
        return False

    def _drop(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._dropped_before += int(getattr(inner, "dropped", 0))
            try:
                inner.close()
            except Exception:
                log.debug("closing the lost source failed", exc_info=True)

    # -- FrameSource -------------------------------------------------------
    def read(self) -> Frame | None:
        error: SourceError | None = None
        while not self._stop.is_set():
            if self._inner is None and not self._connect(error):
                return None
            error = None
            inner = self._inner  # close() from another thread may clear it meanwhile
            if inner is None:
                continue
            try:
                frame = inner.read()
            except SourceError as e:
                if self._stop.is_set():
                    return None
                error = e
            else:
                if frame is None:
                    if self._stop.is_set() or not inner.is_live:
                        return None
                    # A live source that simply ends (stream closed by the server) is lost too.
                    error = SourceError(f"{inner.description} ended.", "check the camera or server.")
                else:
                    frame.index = self._index
                    self._index += 1
                    return frame
            self._drop()
        return None

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._drop()
        self._set_state(SourceState("closed", self.description, reconnects=self.reconnects, since=time.time()))

    @property
    def dropped(self) -> int:
        """Stale frames dropped by the latest-frame readers, over all connections."""
        return self._dropped_before + int(getattr(self._inner, "dropped", 0))
