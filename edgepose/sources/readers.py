"""Background readers that overlap capture with inference.

* :class:`LatestFrameReader` (live sources): a capture thread keeps only the
  newest frame; frames the consumer was too slow for are dropped and counted,
  so a slow model never works on a growing backlog of stale frames.
* :class:`PrefetchReader` (files): a thread decodes the next frames into a
  small queue while the model runs; nothing is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import SourceError
from ..types import Frame
from .base import FrameSource

log = logging.getLogger(__name__)


class _Proxy(FrameSource):
    """Forwards the descriptive attributes of the wrapped source."""

    def __init__(self, source: FrameSource):
        self.source = source
        self.description = source.description
        self.fps = source.fps
        self.frame_count = source.frame_count
        self.is_live = source.is_live
        self.is_image_set = source.is_image_set
        self.close_from_other_thread = True

    def __getattr__(self, name: str):
        # Anything else (``skipped``, ``current_path``, ``loop`` ...) is the wrapped source's.
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)

    def _join_and_close(self, thread: threading.Thread, join_timeout: float) -> None:
        if self.source.close_from_other_thread:
            # A normal capture finishes within a frame time; one that does not is hung and
            # only closing the source releases it.
            thread.join(min(join_timeout, 0.25))
        else:
            thread.join(join_timeout)
            if thread.is_alive():
                # Releasing an OpenCV capture while its read() runs can crash; its own read
                # timeout ends that read, so wait for it before releasing.
                log.warning("%s: capture thread still busy, waiting for it before closing", self.description)
                thread.join()
        self.source.close()
        thread.join(join_timeout)  # a thread blocked in read() returns once the source is closed


class LatestFrameReader(_Proxy):
    """Capture in a thread; ``read()`` returns the newest frame not yet returned.

    ``dropped`` counts frames replaced before anyone read them. With
    ``stall_timeout`` set, ``read()`` raises :class:`SourceError` when no new
    frame arrived for that long (a camera that hangs instead of failing).
    """

    def __init__(self, source: FrameSource, *, stall_timeout: float | None = None, join_timeout: float = 2.0):
        super().__init__(source)
        self.stall_timeout = stall_timeout
        self.join_timeout = join_timeout
        self.dropped = 0
        self.captured = 0
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"capture {source.description}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                with self._cond:
                    if frame is None:
                        self._ended = True
                    else:
                        self.captured += 1
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = frame
                    self._cond.notify_all()
                if frame is None:
                    return
        except BaseException as e:  # handed to the consumer thread
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def read(self) -> Frame | None:
        deadline = None if self.stall_timeout is None else time.monotonic() + self.stall_timeout
        with self._cond:
            while True:
                if self._latest is not None:
                    frame, self._latest = self._latest, None
                    return frame
                if self._error is not None:
                    err = self._error
                    self._error = None
                    self._ended = True
                    raise err
                if self._ended or self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SourceError(
                        f"{self.description} delivered no frame for {self.stall_timeout:g} s.",
                        "check the camera or stream; edgepose reconnects on its own when reconnect = true.",
                    )
                self._cond.wait(remaining)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._join_and_close(self._thread, self.join_timeout)


_END = object()


class PrefetchReader(_Proxy):
    """Decode up to ``depth`` frames ahead in a thread; yields every frame, in order.

    With ``prepare`` (a function of the BGR image, e.g. the model's pre-processing) the
    same thread also prepares each frame, and :meth:`read_prepared` hands out the result
    with the time it took: one thread reads and pre-processes ahead for the pipeline.
    :meth:`set_prepare` attaches it to a reader already running; frames queued before
    come out unprepared (``None``). ``close_source=False`` leaves the wrapped source open.
    """

    def __init__(
        self,
        source: FrameSource,
        depth: int = 2,
        *,
        join_timeout: float = 2.0,
        prepare: Callable[[Any], Any] | None = None,
        close_source: bool = True,
    ):
        super().__init__(source)
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.join_timeout = join_timeout
        self.prepare = prepare
        self.close_source = close_source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=f"prefetch {source.description}", daemon=True)
        self._thread.start()

    def set_prepare(self, prepare: Callable[[Any], Any] | None) -> None:
        self.prepare = prepare

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    self._put(_END)
                    return
                t1 = time.perf_counter()
                prepare = self.prepare
                prepared = prepare(frame.image) if prepare is not None else None
                item = (
                    frame,
                    prepared,
                    {"read": t1 - t0, "pre": time.perf_counter() - t1} if prepare is not None else {"read": t1 - t0},
                )
                if not self._put(item):
                    return
        except BaseException as e:
            self._put(e)

    def read_prepared(self) -> tuple[Frame, Any, dict[str, float]] | None:
        """The next ``(frame, prepared or None, {"read": s, "pre": s})``, or ``None`` at the end."""
        while True:
            if self._done:
                return None
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                continue  # closed meanwhile (from another thread): _done is set
        if item is _END:
            self._done = True
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def read(self) -> Frame | None:
        item = self.read_prepared()
        return None if item is None else item[0]

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._done = True
        try:  # unblock a producer waiting on a full queue
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self.close_source:
            self._join_and_close(self._thread, self.join_timeout)
        else:
            self._thread.join(self.join_timeout)
