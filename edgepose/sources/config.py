"""Capture settings (section ``[source]`` of the device config). See edgepose/sources/README.md."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SourceKind = Literal["auto", "picamera2", "camera", "video", "stream", "image", "folder", "glob"]


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``picamera2`` (or ``picamera2:1``), a camera index (``0``) or device (``/dev/video0``), a video file,
    #: an image, a folder of images, a glob (``shots/*.jpg``), or an ``rtsp://`` / ``http://`` URL.
    uri: str = "0"
    #: How to read ``uri``; ``auto`` decides from its form (see edgepose/sources/README.md).
    kind: SourceKind = "auto"
    #: Capture size requested from cameras (files keep their own size).
    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)
    #: Capture rate requested from cameras; for image sequences the rate their timestamps assume.
    fps: float | None = Field(None, gt=0)
    #: Files and image sequences: start again at the end (timestamps keep increasing).
    loop: bool = False
    #: Live sources: a capture thread keeps only the newest frame, so a slow model never lags behind.
    latest_only: bool = True
    #: Files: frames decoded ahead in a background thread while the model runs (0 = off).
    prefetch: int = Field(2, ge=0, le=64)
    #: Live sources: reopen with exponential back-off when the camera or stream disappears.
    reconnect: bool = True
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    #: Give up after this many consecutive failed reopen attempts (0 = never give up).
    retry_max_attempts: int = Field(0, ge=0)
    #: Live sources: seconds without a frame (or to open a stream) before it counts as lost.
    timeout_s: float = Field(10.0, gt=0)
    #: RTSP transport: ``tcp`` survives lossy Wi-Fi; ``udp`` has less delay on a clean LAN.
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
