"""OpenCV ``VideoCapture`` sources: USB/V4L2 cameras, video files, RTSP/HTTP streams."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import SourceError
from ..redact import redact_url
from ..types import Frame
from .base import FrameSource
from .config import SourceConfig

log = logging.getLogger(__name__)

# OPENCV_FFMPEG_CAPTURE_OPTIONS is read when a capture opens; it is process-global, so
# opening streams is serialised while it is set.
_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_env_lock = threading.Lock()


def ffmpeg_stream_options(url: str, transport: str = "tcp") -> str:
    """Low-latency FFmpeg demuxer options for a network stream (``key;value|key;value``).

    For real-time protocols (RTSP, RTMP, UDP, SRT) ``nobuffer`` + ``low_delay``
    stop FFmpeg from buffering ahead, so a frame is the newest one the camera
    sent rather than one seconds old. HTTP sources (MJPEG cameras, files on a
    server) only get ``low_delay``: ``nobuffer`` makes the AVI/MP4 demuxers
    lose most frames over HTTP.
    """
    scheme = url.split("://", 1)[0].lower()
    opts = ["flags;low_delay", "max_delay;500000"]
    if scheme in ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "srt", "tcp"):
        opts.insert(0, "fflags;nobuffer")
    if scheme in ("rtsp", "rtsps"):
        opts.insert(0, f"rtsp_transport;{transport}")
    return "|".join(opts)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Hide OpenCV's own warnings while probing a device: our SourceError says it better."""
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None:  # pragma: no cover - very old OpenCV
        yield
        return
    old = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging_mod.setLogLevel(old)


def _as_bgr(img: np.ndarray) -> np.ndarray:
    """3-channel uint8: some cameras deliver grey or BGRA frames."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


class _CaptureSource(FrameSource):
    """A source reading from an OpenCV ``VideoCapture`` held in ``self._cap``."""

    _cap: cv2.VideoCapture | None = None

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class VideoFileSource(_CaptureSource):
    """A video file decoded with OpenCV; timestamps are media time ``index / fps``."""

    is_live = False

    def __init__(self, path: str | Path, config: SourceConfig | None = None):
        cfg = config or SourceConfig()
        self.path = Path(path)
        self.loop = cfg.loop
        if not self.path.exists():
            raise SourceError(
                f"video file {self.path} does not exist.",
                "check the path (relative paths start from the current folder), or pass a camera index such as 0.",
            )
        if self.path.is_dir():
            raise SourceError(
                f"{self.path} is a folder, not a video.", "pass a video file, or set source kind = 'folder'."
            )
        self._cap = cap = self._open()
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # Some containers report 0 or absurd rates; then the config's fps (if any) is used.
        self.fps = fps if 0.0 < fps < 1000.0 else cfg.fps
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 and not self.loop else None
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._index = 0
        self._pos = 0  # frame position within the current pass (for media time)
        self._offset = 0.0  # media time of the start of the current pass when looping
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(
                f"{self.path} opened but no frame could be decoded (corrupt file or unsupported codec).",
                f"re-encode it, e.g. 'ffmpeg -i {self.path.name} -c:v libx264 -pix_fmt yuv420p fixed.mp4', "
                "or check the copy is complete.",
            )
        self._pending: np.ndarray | None = first
        fps_s = f" @ {self.fps:g} fps" if self.fps else ""
        n_s = f", {n} frames" if n > 0 else ""
        self.description = f"video {self.path.name} ({self.width}x{self.height}{fps_s}{n_s})"

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(
                f"{self.path} could not be opened as a video (unknown format or corrupt file).",
                "check it plays in a media player; re-encode with "
                f"'ffmpeg -i {self.path.name} -c:v libx264 -pix_fmt yuv420p fixed.mp4'.",
            )
        return cap

    def _check_complete(self) -> None:
        """Say so when the file ends before the frame count its header gives (a copy cut short, a damaged file)."""
        n = self.frame_count
        # Container counts can be estimates (duration x rate): a frame short is not a damaged file.
        if n and n - self._index > max(1, n // 100) and not getattr(self, "_warned_short", False):
            self._warned_short = True
            log.warning(
                "video %s ended early at frame %d of the %d its header announces (truncated or damaged file); "
                "the %d frames before it were processed. Fix: copy or record the file again.",
                self.path,
                self._index,
                n,
                self._index,
            )

    def _media_time(self, pos: int) -> float:
        if self.fps:
            return self._offset + pos / self.fps
        return self._offset + (float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0 if self._cap is not None else 0.0)

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        if self._pending is not None:
            img, self._pending = self._pending, None
        else:
            ok, img = self._cap.read()
            if not ok or img is None:
                if not self.loop:
                    self._check_complete()
                    return None
                if self._pos == 0:
                    return None
                # Reopen rather than seek: seeking is unreliable in some containers.
                self._offset += self._pos / self.fps if self.fps else 0.0
                self._cap.release()
                self._cap = self._open()
                self._pos = 0
                ok, img = self._cap.read()
                if not ok or img is None:
                    return None
        frame = Frame(self._index, self._media_time(self._pos), _as_bgr(img))
        self._index += 1
        self._pos += 1
        return frame


def camera_target(spec: str | int) -> int | str:
    """``0`` / ``"0"`` -> 0; ``/dev/video2`` stays a path (OpenCV's V4L2 backend opens both)."""
    if isinstance(spec, int):
        return spec
    s = spec.strip()
    return int(s) if s.isdigit() else s


class CameraSource(_CaptureSource):
    """A USB/V4L2 camera via OpenCV; timestamps are ``time.time()`` at capture."""

    is_live = True

    def __init__(self, spec: str | int, config: SourceConfig | None = None):
        cfg = config or SourceConfig()
        self.target = camera_target(spec)
        name = f"/dev/video{self.target}" if isinstance(self.target, int) else self.target
        self.description = f"camera {name}"
        # V4L2 directly on Linux: CAP_ANY would also try FFmpeg/GStreamer and print confusing warnings.
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        with _quiet_opencv():
            cap = cv2.VideoCapture(self.target, backend)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {name} could not be opened.",
                "check it is plugged in ('ls /dev/video*', 'v4l2-ctl --list-devices'), that no other program "
                "uses it and that the user is in the 'video' group; for a Raspberry Pi ribbon-cable camera "
                "use source uri 'picamera2'.",
            )
        if cfg.width and cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        # A 1-frame driver queue: old frames are not worth anything to a live pipeline.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        reported = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = cfg.fps or (reported if reported > 0 else None)
        self._cap = cap
        self._index = 0
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            self._cap = None
            # e.g. /dev/video1 on many webcams is a metadata node that opens but never streams.
            raise SourceError(
                f"camera {name} opened but delivered no frame.",
                "try the next device number ('v4l2-ctl --list-devices' shows which node captures video) "
                "or a resolution the camera supports.",
            )
        self._pending: np.ndarray | None = img
        self._first_ts = time.time()
        self.description += f" ({img.shape[1]}x{img.shape[0]})"

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        if self._pending is not None:
            img, self._pending = self._pending, None
            ts = self._first_ts
        else:
            try:
                ok, img = self._cap.read()
            except cv2.error as e:  # pragma: no cover - driver-specific
                ok, img = False, None
                log.debug("camera read raised %s", e)
            ts = time.time()
            if not ok or img is None:
                raise SourceError(
                    f"{self.description} stopped delivering frames (unplugged?).",
                    "check the cable and power; edgepose reconnects on its own when reconnect = true.",
                )
        assert img is not None  # for mypy: the pending frame is never None
        frame = Frame(self._index, ts, _as_bgr(img))
        self._index += 1
        return frame


class StreamSource(_CaptureSource):
    """An RTSP/HTTP/RTMP stream through OpenCV's FFmpeg backend, opened for low latency."""

    is_live = True

    def __init__(self, url: str, config: SourceConfig | None = None):
        cfg = config or SourceConfig()
        self.url = url
        self.description = f"stream {redact_url(url)}"
        timeout_ms = int(cfg.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        with _ffmpeg_env_lock:
            old = os.environ.get(_FFMPEG_ENV)
            os.environ[_FFMPEG_ENV] = ffmpeg_stream_options(url, cfg.rtsp_transport)
            try:
                cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
            finally:
                if old is None:
                    os.environ.pop(_FFMPEG_ENV, None)
                else:
                    os.environ[_FFMPEG_ENV] = old
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"{self.description} could not be opened (unreachable, refused, wrong path or credentials).",
                "check the URL plays in 'ffplay' or VLC from this device, the network and the credentials; "
                "for RTSP over Wi-Fi keep rtsp_transport = 'tcp'; a phone's IP-camera app serves MJPEG at e.g. http://PHONE:8080/video.",
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        reported = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = reported if 0.0 < reported < 1000.0 else cfg.fps
        self._cap = cap
        self._index = 0

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        ok, img = self._cap.read()
        if not ok or img is None:
            raise SourceError(
                f"{self.description} stopped delivering frames.",
                "check the camera/server and network; edgepose reconnects on its own when reconnect = true.",
            )
        frame = Frame(self._index, time.time(), _as_bgr(img))
        self._index += 1
        return frame
