"""The device page of ``edgepose serve``: live annotated stream, status, events, Prometheus metrics.

:class:`DeviceWeb` is an observer of the service loop: :meth:`on_frame` runs in
the frame loop and only updates counters and keeps a reference to the newest
result, so with nobody watching the page costs nothing. An encoder thread
draws and JPEG-encodes the newest frame, at most ``stream_fps`` times a
second, only while at least one viewer is connected; every viewer gets the
same JPEG. In ``privacy = "skeleton"`` the camera image is dropped before it
is stored: the stream is drawn on a plain background, so no camera pixel can
leave the process.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable

import cv2
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder

from .. import __version__
from ..draw import ActionLabels, draw_poses
from ..fps import STALL_S, FpsMeter
from ..types import FrameResult
from .config import HttpConfig
from .server import Handler, WebServer, page

log = logging.getLogger(__name__)

#: Background of the skeleton-only stream (BGR): plain, so a camera pixel would stand out.
PRIVACY_BACKGROUND = (48, 40, 32)
MS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)
BOUNDARY = b"edgeposeframe"


class Metrics:
    """The Prometheus series of one device, in their own registry (scraped at ``/metrics``)."""

    def __init__(self, sink: Callable[[], Any]):
        r = self.registry = CollectorRegistry()
        self.info = Info("edgepose", "device, model and version", registry=r)
        self.frames = Counter("edgepose_frames", "frames processed", registry=r)
        self.fps = Gauge("edgepose_fps", "frames per second (frames over the last 5 s)", registry=r)
        self.invoke = Histogram(
            "edgepose_invoke_milliseconds", "model invoke time per frame", buckets=MS_BUCKETS, registry=r
        )
        self.decode = Histogram(
            "edgepose_decode_milliseconds", "pose decoding time per frame", buckets=MS_BUCKETS, registry=r
        )
        self.publish = Histogram(
            "edgepose_publish_milliseconds",
            "encoding and queueing one frame's MQTT messages",
            buckets=MS_BUCKETS,
            registry=r,
        )
        self.total = Histogram(
            "edgepose_frame_milliseconds",
            "all stages of a frame (pre-process to publishing)",
            buckets=MS_BUCKETS,
            registry=r,
        )
        self.people = Gauge("edgepose_people", "people in the newest frame", registry=r)
        self.events = Counter("edgepose_events", "action events", ["action"], registry=r)
        self.reconnects = Counter(
            "edgepose_camera_reconnects", "times the camera came back after being unavailable", registry=r
        )
        self.viewers = Gauge("edgepose_stream_viewers", "MJPEG viewers connected", registry=r)
        self.encoded = Counter("edgepose_stream_frames_encoded", "JPEG frames encoded for the stream", registry=r)
        self.encode_ms = Histogram(
            "edgepose_stream_encode_milliseconds",
            "CPU time to draw and encode one stream frame",
            buckets=MS_BUCKETS,
            registry=r,
        )
        outbox = Gauge("edgepose_outbox_depth", "events waiting in the durable outbox", registry=r)
        connected = Gauge("edgepose_mqtt_connected", "1 while connected to the MQTT broker", registry=r)
        # Read at scrape time from the MQTT sink (absent: 0).
        outbox.set_function(lambda: len(sink().outbox) if sink() is not None else 0.0)
        connected.set_function(lambda: 1.0 if sink() is not None and sink().connected else 0.0)


def stream_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """Stream frame size: the source scaled down (never up) to ``max_width``, even sides for JPEG."""
    if width <= 0 or height <= 0:
        return max_width, max_width * 9 // 16
    s = min(1.0, max_width / width)
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def render(
    result: FrameResult, image: np.ndarray | None, max_width: int, labels: dict[int, list[str]] | None = None
) -> np.ndarray:
    """The annotated stream frame: ``image`` (or a plain background) scaled to the stream size, with skeletons
    and each track's ongoing actions (``labels``, from :class:`~edgepose.draw.ActionLabels`)."""
    w, h = stream_size(result.width, result.height, max_width)
    canvas: np.ndarray
    if image is None:
        canvas = np.empty((h, w, 3), np.uint8)
        canvas[:] = PRIVACY_BACKGROUND
    else:
        canvas = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    sx, sy = w / max(result.width, 1), h / max(result.height, 1)
    poses = [p.scaled(sx, sy) for p in result.poses]
    return (
        draw_poses(canvas, poses, labels=labels)
        if labels is not None
        else draw_poses(canvas, poses, events=result.events)
    )


class DeviceWeb:
    """Observer of :class:`~edgepose.service.runner.Service` serving the device page.

    ``sink`` (an :class:`~edgepose.mqtt.sink.MqttSink`) supplies the MQTT
    state and outbox depth; ``status`` returns the service's own fields.
    """

    def __init__(
        self, cfg: HttpConfig, device_id: str, *, model: str | None = None, sink: Any = None, status: Any = None
    ):
        self.cfg = cfg
        self.device_id = device_id
        self.model = model
        self.sink = sink
        self.status = status
        self.privacy = cfg.privacy == "skeleton"
        self.metrics = Metrics(lambda: self.sink)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=cfg.events_kept)
        self.events_seen = 0
        self.camera = "starting"
        self.fps: float | None = None
        self._fps = FpsMeter()
        self.frames = 0
        self._last_t: float | None = None
        self._latest: tuple[FrameResult, np.ndarray | None, dict[int, list[str]]] | None = None
        # Fed every frame (not only the encoded ones), so an action shows until it ends, as in `run --output`.
        self._labels = ActionLabels()
        self._latest_seq = 0
        self._timings: dict[str, float] = {}
        self._people = 0
        self._lock = threading.Lock()
        # Encoder <-> viewers: the encoder waits for viewers and frames; viewers wait for JPEGs.
        self._cond = threading.Condition()
        self._viewers = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._closed = False
        self._encoder: threading.Thread | None = None
        self.server = WebServer(
            cfg,
            {
                "/": page("device.html"),
                "/stream.mjpg": self._stream,
                "/metrics": self._metrics,
                "/healthz": self._healthz,
                "/api/status": lambda h: h.send_json(self.status_dict()),
                "/api/events": lambda h: h.send_json({"events": list(self.events), "total": self.events_seen}),
            },
            what=f"device {device_id}:",
        )

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> DeviceWeb:
        self.metrics.info.info({"device": self.device_id, "model": self.model or "", "version": __version__})
        self._encoder = threading.Thread(target=self._encode_loop, name="edgepose-mjpeg", daemon=True)
        self._encoder.start()
        self.server.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.server.stop()
        if self._encoder is not None:
            self._encoder.join(2.0)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def keep_image(self) -> bool:
        """Whether the pipeline should hand camera images to :meth:`on_frame` (never in privacy mode)."""
        return not self.privacy

    # -- observer interface (frame loop) --------------------------------------------
    def on_frame(self, result: FrameResult) -> None:
        now = time.monotonic()
        m = self.metrics
        t = result.timings
        m.frames.inc()
        if "invoke" in t:
            m.invoke.observe(t["invoke"] * 1e3)
        if "decode" in t:
            m.decode.observe(t["decode"] * 1e3)
        if "publish" in t:
            m.publish.observe(t["publish"] * 1e3)
        if t:
            m.total.observe(sum(t.values()) * 1e3)
        m.people.set(len(result.poses))
        self._fps.tick(now)  # frames over elapsed time (a mean of per-frame rates reads high on bursty frames)
        self.fps = self._fps.fps
        if self.fps is not None:
            m.fps.set(self.fps)
        self._last_t = now
        for e in result.events:
            m.events.labels(e.action).inc()
            self.events.append({"frame": result.index, "ts": round(result.timestamp, 3), **e.to_dict()})
            self.events_seen += 1
        self.frames += 1
        self._timings = t
        self._people = len(result.poses)
        # Privacy: the image is dropped here, before anything can encode it.
        self._latest = (
            result,
            None if self.privacy else result.image,
            self._labels.update(result.events, result.timestamp),
        )
        self._latest_seq += 1
        if self._viewers:
            with self._cond:
                self._cond.notify_all()

    def on_camera(self, state: str, error: str | None = None) -> None:
        if state == "ok" and self.camera == "unavailable":
            self.metrics.reconnects.inc()
        self.camera = state

    # -- encoder thread ----------------------------------------------------------------
    def _encode_loop(self) -> None:
        period = 1.0 / self.cfg.stream_fps
        done_seq = 0
        next_t = 0.0
        while True:
            with self._cond:
                while not self._closed and (self._viewers == 0 or self._latest_seq == done_seq):
                    self._cond.wait(1.0)
                if self._closed:
                    return
            wait = next_t - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the rate cap: a newer frame may arrive meanwhile, and that one is encoded
            latest, done_seq = self._latest, self._latest_seq
            if latest is None:
                continue
            next_t = max(next_t + period, time.monotonic())
            c0 = time.thread_time()
            try:
                img = render(latest[0], latest[1], self.cfg.stream_width, latest[2])
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
            except Exception:  # a bad frame must not end the stream
                log.exception("stream frame")
                continue
            if ok:
                self.metrics.encode_ms.observe((time.thread_time() - c0) * 1e3)
                self.metrics.encoded.inc()
                with self._cond:
                    self._jpeg = buf.tobytes()
                    self._jpeg_seq += 1
                    self._cond.notify_all()

    # -- routes ------------------------------------------------------------------------
    def _stream(self, h: Handler) -> None:
        ctype = f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
        if h.command == "HEAD":
            h.send_bytes(200, b"", ctype)
            return
        with self._cond:
            if self._viewers >= self.cfg.max_viewers:
                full = True
            else:
                full = False
                self._viewers += 1
                self.metrics.viewers.set(self._viewers)
                self._cond.notify_all()
        if full:
            h.send_bytes(503, b"too many viewers\n", "text/plain; charset=utf-8", {"Retry-After": "10"})
            return
        try:
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            h.send_header("Cache-Control", "no-store")
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
            seen = 0
            while True:
                with self._cond:
                    while not self._closed and self._jpeg_seq == seen:
                        self._cond.wait(1.0)
                    if self._closed:
                        return
                    jpeg, seen = self._jpeg, self._jpeg_seq
                assert jpeg is not None
                h.wfile.write(
                    b"--"
                    + BOUNDARY
                    + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg
                    + b"\r\n"
                )
                h.wfile.flush()
        finally:
            with self._cond:
                self._viewers -= 1
                self.metrics.viewers.set(self._viewers)

    def _metrics(self, h: Handler) -> None:
        # The client library picks the format the scraper asks for (Prometheus text or OpenMetrics).
        encode, ctype = choose_encoder(h.headers.get("Accept", ""))
        h.send_bytes(200, encode(self.metrics.registry), ctype)

    def healthy(self) -> bool:
        if self.camera in ("starting", "unavailable"):
            return True  # waiting for the camera on purpose: the status says so, a restart would not help
        return self._last_t is not None and time.monotonic() - self._last_t < STALL_S or self.camera == "ended"

    def _healthz(self, h: Handler) -> None:
        ok = self.healthy()
        h.send_bytes(200 if ok else 503, b"ok\n" if ok else b"stalled\n", "text/plain; charset=utf-8")

    def status_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "device": self.device_id,
            "model": self.model,
            "version": __version__,
            "privacy": self.cfg.privacy,
            "camera": self.camera,
            "frames": self.frames,
            "fps": round(self.fps, 2) if self.fps is not None else 0.0,
            "ms": {k: round(v * 1e3, 2) for k, v in self._timings.items()},
            "people": self._people,
            "viewers": self._viewers,
            "events_total": self.events_seen,
        }
        if self.sink is not None:
            d["mqtt"] = {
                "connected": bool(self.sink.connected),
                "broker": f"{self.sink.cfg.host}:{self.sink.cfg.port}",
                "outbox": len(self.sink.outbox),
                "error": self.sink.last_error,
            }
        if self.status is not None:
            try:
                d.update({k: v for k, v in self.status().items() if k not in d})
            except Exception:
                log.debug("status fields", exc_info=True)
        return d
