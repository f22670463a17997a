"""Frame capture: cameras, files, streams and images behind one :class:`FrameSource` API.

>>> with open_source("video.mp4") as src:          # doctest: +SKIP
...     for frame in src:                            # Frame(index, timestamp, image BGR uint8)
...         ...

``open_source`` picks the kind from the spec (see :func:`resolve`), and wraps
live sources in a :class:`LatestFrameReader` (drop stale frames) inside a
:class:`RetryingSource` (reopen with back-off), and files in a
:class:`PrefetchReader` (decode ahead), as the config asks. Details and the
error messages: edgepose/sources/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from ..errors import SourceError
from ..redact import redact_url
from .base import FrameSource
from .config import SourceConfig, SourceKind
from .images import GLOB_CHARS, ImageSequenceSource, folder_source, glob_source, image_source, is_image_path
from .opencv import CameraSource, StreamSource, VideoFileSource
from .picamera import Picamera2Source, parse_camera_num, picamera2_available
from .readers import LatestFrameReader, PrefetchReader
from .retry import RetryingSource, SourceState, backoff_delays

__all__ = [
    "CameraSource",
    "FrameSource",
    "ImageSequenceSource",
    "LatestFrameReader",
    "Picamera2Source",
    "PrefetchReader",
    "RetryingSource",
    "SourceConfig",
    "SourceError",
    "SourceState",
    "StreamSource",
    "VideoFileSource",
    "backoff_delays",
    "open_raw_source",
    "open_source",
    "picamera2_available",
    "resolve",
]

_URL = re.compile(r"^(rtsps?|rtmps?|https?|udp|tcp|srt)://", re.IGNORECASE)
LIVE_KINDS = frozenset({"picamera2", "camera", "stream"})


def resolve(uri: str | int, kind: SourceKind = "auto") -> tuple[str, str | int]:
    """``(kind, target)`` for a source spec.

    ``picamera2[:N]`` -> picamera2; digits or ``/dev/video*`` -> camera; a URL
    -> stream; ``*``/``?``/``[`` -> glob; an existing folder -> folder; an image
    extension -> image; anything else -> video file.
    """
    if isinstance(uri, int):
        return ("camera" if kind == "auto" else kind), uri
    s = uri.strip()
    if kind != "auto":
        return kind, s
    if s.lower().split(":", 1)[0] == "picamera2":
        return "picamera2", s
    if s.isdigit() or s.startswith("/dev/video"):
        return "camera", s
    if _URL.match(s):
        return "stream", s
    if GLOB_CHARS.search(s) and not Path(s).exists():
        return "glob", s
    p = Path(s).expanduser()
    if p.is_dir() or s.endswith(("/", "\\")):
        return "folder", str(p)
    if is_image_path(p):
        return "image", str(p)
    return "video", str(p)


def _as_config(spec: SourceConfig | str | int, overrides: dict[str, Any]) -> SourceConfig:
    if isinstance(spec, SourceConfig):
        return SourceConfig.model_validate({**spec.model_dump(), **overrides}) if overrides else spec
    return SourceConfig.model_validate({"uri": str(spec), **overrides})


def open_raw_source(kind: str, target: str | int, cfg: SourceConfig) -> FrameSource:
    """One source of the given kind, without readers or retry."""
    if kind == "picamera2":
        return Picamera2Source(parse_camera_num(str(target)), cfg)
    if kind == "camera":
        return CameraSource(target, cfg)
    if kind == "stream":
        return StreamSource(str(target), cfg)
    if kind == "video":
        return VideoFileSource(str(target), cfg)
    if kind == "image":
        return image_source(str(target), cfg)
    if kind == "folder":
        return folder_source(str(target), cfg)
    if kind == "glob":
        return glob_source(str(target), cfg)
    raise SourceError(
        f"unknown source kind {kind!r}.", "use one of auto, picamera2, camera, video, stream, image, folder, glob."
    )


def open_source(
    spec: SourceConfig | str | int,
    *,
    on_state: Callable[[SourceState], None] | None = None,
    retry_first_open: bool = False,
    **overrides: Any,
) -> FrameSource:
    """Open a frame source from a config, a path/URL/``picamera2`` string, or a camera index.

    ``overrides`` are :class:`SourceConfig` fields (``width=640, prefetch=0, ...``).
    Live sources with ``reconnect`` get a :class:`RetryingSource` reporting to
    ``on_state``; ``retry_first_open=True`` also retries the very first open
    (the service at boot), otherwise a source that cannot be opened raises
    :class:`SourceError` at once.
    """
    cfg = _as_config(spec, overrides)
    uri: str | int = spec if isinstance(spec, int) else cfg.uri
    kind, target = resolve(uri, cfg.kind)
    if kind not in LIVE_KINDS:
        src = open_raw_source(kind, target, cfg)
        return PrefetchReader(src, cfg.prefetch) if cfg.prefetch > 0 else src

    def opener() -> FrameSource:
        raw = open_raw_source(kind, target, cfg)
        return LatestFrameReader(raw, stall_timeout=cfg.timeout_s) if cfg.latest_only else raw

    if not cfg.reconnect:
        return opener()
    name = redact_url(str(target))  # any kind: a video "file" may be an http:// URL with a password too
    return RetryingSource(
        opener,
        description=f"{kind} {name}",
        on_state=on_state,
        initial_delay=cfg.retry_initial_s,
        max_delay=cfg.retry_max_s,
        max_attempts=cfg.retry_max_attempts,
        retry_first_open=retry_first_open,
        fps=cfg.fps,
    )
