"""The service loop: frames in, MQTT out, for months.

:class:`Service` takes a *factory* of frame iterables (normally
``lambda: Pipeline(config)``) rather than one iterable, because a camera that
is missing or unplugged raises :class:`~edgepose.errors.SourceError` and
leaves the iterator dead: the service reports ``camera: "unavailable"`` on the
status topic, waits with back-off and builds a new one, while the MQTT
connection stays up. A heartbeat thread publishes ``status`` every
``status_interval`` seconds and pets the systemd watchdog only while the frame
loop makes progress, so a hung model gets the service restarted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import EdgeposeError, SourceError
from ..fps import STALL_S, FpsMeter
from ..mqtt.sink import MqttSink
from ..net import backoff_delays
from ..systemd import SystemdNotifier
from ..types import ActionEvent, FrameResult

log = logging.getLogger(__name__)

#: ``$EDGEPOSE_HEALTH_FILE`` (Docker HEALTHCHECK) is touched this often while frames flow,
#: and no longer once none came for STALL_S seconds (without a systemd watchdog).
HEALTH_TICK_S = 10.0


class Service:
    def __init__(
        self,
        sink: MqttSink,
        frames: Callable[[], Iterable[FrameResult]],
        *,
        status_interval: float = 30.0,
        retry_min: float = 1.0,
        retry_max: float = 30.0,
        notifier: SystemdNotifier | None = None,
        max_frames: int | None = None,
        finish: Callable[[], list[ActionEvent]] | None = None,
        status_line: Callable[[str], None] | None = None,
        status_line_interval: float = 0.0,
    ):
        self.sink = sink
        self.frames = frames
        #: Ends the actions still open when the service stops (their ``end`` events go to the outbox).
        self.finish = finish
        self.status_interval = status_interval
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.notifier = notifier or SystemdNotifier()
        self.max_frames = max_frames
        self.camera = "starting"
        self.camera_error: str | None = None
        self.frames_done = 0
        self._fps = FpsMeter()
        #: Called with a one-line summary every ``status_line_interval`` seconds (``serve`` prints it to stderr).
        self.status_line = status_line
        self.status_line_interval = status_line_interval
        self._frames: Any = None
        self._started = time.monotonic()
        self._progress = time.monotonic()
        self._stop = threading.Event()
        self._camera_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        #: The error that ended the service for good (a model that cannot load, a source out of attempts).
        self.fatal: EdgeposeError | None = None
        self._source_failed = False
        sink.status_fields = self.status_fields
        #: Also told of every frame and camera change: ``on_frame(result)``, ``on_camera(state, error)`` (the web page).
        self.observers: list[Any] = []

    # -- control ---------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish (signal-handler safe): the current frame completes, then a graceful close."""
        self._stop.set()
        src = self.source
        if src is not None and getattr(src, "close_from_other_thread", False):
            # A source waiting for its camera to come back would hold the loop for up to its back-off.
            threading.Thread(target=src.close, name="edgepose-source-close", daemon=True).start()

    #: The open frame source, if the frames factory attaches it: read for ``dropped`` frames.
    source: Any = None

    def source_state_changed(self, state: Any) -> None:
        """``on_state`` callback of :func:`edgepose.sources.open_source` (a ``SourceState``)."""
        name = getattr(state, "state", str(state))
        if name == "failed":
            self._source_failed = True
        camera = {"connected": "ok", "connecting": "starting", "retrying": "unavailable", "failed": "unavailable"}.get(
            name
        )
        if camera is not None:
            self._set_camera(camera, getattr(state, "error", None) if camera == "unavailable" else None)

    @property
    def fps(self) -> float | None:
        """Frames per second over the last ``FPS_WINDOW_S`` seconds (None before two frames)."""
        return self._fps.fps

    def status_text(self) -> str:
        """The periodic status line: frames, rate, camera, MQTT and the outbox, in one line."""
        sink = self.sink
        fps = self.fps
        mqtt = (
            "connected" if sink.connected else f"disconnected ({sink.last_error})" if sink.last_error else "connecting"
        )
        cam = self.camera + (f" ({self.camera_error})" if self.camera_error else "")
        return (
            f"status: {self.frames_done} frames, {fps or 0.0:.1f} fps, camera {cam}, people {sink.people}, MQTT {mqtt}, "
            f"events sent {sink.stats.events_sent} pending {len(sink.outbox)} dropped {sink.events_dropped}"
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def status_fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "uptime": round(time.monotonic() - self._started, 1),
            "fps": round(self.fps, 2) if self.fps is not None else 0.0,
            "frames": self.frames_done,
            "camera": self.camera,
            "camera_error": self.camera_error,
        }
        dropped = getattr(self.source, "dropped", None)
        if isinstance(dropped, int):
            d["frames_dropped"] = dropped
        skipped = getattr(self.source, "skipped", None)
        if isinstance(skipped, list):
            d["files_skipped"] = len(skipped)  # unreadable files of a folder source, each logged once
        return d

    # -- main loop ---------------------------------------------------------------
    def run(self) -> int:
        """Run until :meth:`stop`, or until the input ends (a file source). Returns a process exit code.

        0 after a stop, ``--max-frames`` or the end of a file; the error's ``exit_code`` (non-zero) when the
        service cannot go on: a model that cannot load, a source that failed for good (out of reopen attempts),
        any other :class:`EdgeposeError` from the frames. A camera that is merely missing is retried, not fatal.
        """
        self.sink.start()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="edgepose-heartbeat", daemon=True)
        self._heartbeat.start()
        self.notifier.ready(f"publishing to {self.sink.cfg.host}:{self.sink.cfg.port}")
        reason = "stopped"
        try:
            reason = self._loop()
        except EdgeposeError as e:
            # One line with the fix (the CLI's style), a retained offline status naming it, then a non-zero exit.
            self.fatal = e
            reason = f"error: {e.problem}"
            log.info("service stopping: %s", e)  # the caller reports it (serve: one line, the CLI's way)
        except BaseException as e:
            reason = f"error: {type(e).__name__}"
            raise
        finally:
            self.notifier.stopping()
            self._stop.set()
            if self.finish is not None and reason in ("stopped", "max frames"):
                try:
                    self.sink.publish_events(self.finish())
                except Exception:  # never block the shutdown
                    log.warning("could not end the open actions", exc_info=True)
            drained = self.sink.close(reason=reason)
            log.info("service stopped (%s); outbox %s", reason, "drained" if drained else "kept for the next start")
            self.notifier.close()
        return self.fatal.exit_code if self.fatal is not None else 0

    def _loop(self) -> str:
        delays = backoff_delays(self.retry_min, self.retry_max)
        delay = next(delays)
        while not self._stop.is_set():
            try:
                self._frames = self.frames()
                for result in self._frames:
                    now = time.monotonic()
                    self._progress = now
                    if self.camera != "ok":
                        self._set_camera("ok", None)
                        delays = backoff_delays(self.retry_min, self.retry_max)
                        delay = next(delays)
                    self._fps.tick(now)
                    t = time.perf_counter()
                    self.sink.publish_frame(result)
                    # Encoding and queueing for MQTT is a stage of the frame like decode: the page and
                    # /metrics show what it costs beside invoke.
                    result.timings["publish"] = time.perf_counter() - t
                    for obs in self.observers:
                        obs.on_frame(result)
                    self.frames_done += 1
                    if self._stop.is_set():
                        return "stopped"
                    if self.max_frames is not None and self.frames_done >= self.max_frames:
                        return "max frames"
                if self._stop.is_set():
                    return "stopped"
                self._set_camera("ended", None)
                log.info("input ended after %d frames", self.frames_done)
                return "input ended"
            except SourceError as e:
                if self._source_failed or getattr(e, "fatal", False):
                    raise  # out of reopen attempts (retrying here would defeat retry_max_attempts), or a bad file
                self._set_camera("unavailable", str(e))
                log.error("camera unavailable: %s Retrying in %gs.", e, delay)
                self._wait(delay)
                delay = next(delays)
            finally:
                self._close_source()
        return "stopped"

    def _set_camera(self, state: str, error: str | None) -> None:
        with self._camera_lock:  # the capture thread reports too
            changed = state != self.camera or error != self.camera_error
            self.camera, self.camera_error = state, error
            if state in ("starting", "unavailable"):
                self._fps.reset()  # no frames: no rate (status shows 0)
        if changed:
            for obs in self.observers:
                obs.on_camera(state, error)
            # Camera changes go out at once, not at the next heartbeat.
            self.sink.publish_status("online")
            self.notifier.status(f"camera {state}" + (f": {error}" if error else ""))

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            self._progress = time.monotonic()  # waiting on purpose is progress for the watchdog
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 0.5))

    def _close_source(self) -> None:
        src, self._frames = self._frames, None
        self.source = None
        close = getattr(src, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing a broken camera must not stop the service
                log.debug("closing the source failed", exc_info=True)

    # -- heartbeat / watchdog thread ---------------------------------------------------
    def _heartbeat_loop(self) -> None:
        wd = self.notifier.watchdog_interval
        # Containers have no systemd watchdog: a file touched while alive serves their HEALTHCHECK.
        health = Path(os.environ["EDGEPOSE_HEALTH_FILE"]) if os.environ.get("EDGEPOSE_HEALTH_FILE") else None
        limit = wd or STALL_S
        lines = self.status_line is not None and self.status_line_interval > 0
        tick = min(
            self.status_interval,
            wd / 2 if wd else self.status_interval,
            HEALTH_TICK_S if health else self.status_interval,
            self.status_line_interval if lines else self.status_interval,
        )
        next_status = time.monotonic() + self.status_interval
        next_line = time.monotonic() + self.status_line_interval
        while not self._stop.wait(tick):
            now = time.monotonic()
            # A camera being retried is the source waiting on purpose, not a hang.
            alive = now - self._progress < limit or self.camera in ("starting", "unavailable")
            if wd and alive:
                self.notifier.watchdog()
            if health is not None and alive:
                try:
                    health.touch()
                except OSError as e:
                    log.debug("cannot touch the health file %s: %s", health, e)
            if now >= next_status:
                next_status = now + self.status_interval
                try:
                    self.sink.publish_status("online")
                except Exception:
                    log.exception("status heartbeat")
            if lines and now >= next_line and self.status_line is not None:
                next_line = now + self.status_line_interval
                try:
                    self.status_line(self.status_text())
                except Exception:
                    log.exception("status line")
