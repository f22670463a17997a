"""Capture settings (section ``[source]`` of the device config). See edgepose/sources/README.md."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config_base import ConfigModel

SourceKind = Literal["auto", "picamera2", "camera", "video", "stream", "image", "folder", "glob"]


class SourceConfig(ConfigModel):
    uri: str = Field(
        "0",
        description="`picamera2` (or `picamera2:1`), a camera index (`0`) or device (`/dev/video0`), a video file, an image, a folder of images, a glob (`shots/*.jpg`), or an `rtsp://` / `http://` URL.",
    )
    kind: SourceKind = Field(
        "auto", description="How to read `uri`; `auto` decides from its form (see edgepose/sources/README.md)."
    )
    width: int | None = Field(
        None, gt=0, le=16384, description="Capture width requested from cameras (files keep their own size)."
    )
    height: int | None = Field(None, gt=0, le=16384, description="Capture height requested from cameras.")
    fps: float | None = Field(
        None,
        ge=0.001,
        le=1000.0,
        description="Capture rate requested from cameras; for image sequences the rate their timestamps assume.",
    )
    loop: bool = Field(
        False, description="Files and image sequences: start again at the end (timestamps keep increasing)."
    )
    latest_only: bool = Field(
        True,
        description="Live sources: a capture thread keeps only the newest frame, so a slow model never lags behind.",
    )
    prefetch: int = Field(
        2, ge=0, le=64, description="Files: frames decoded ahead in a background thread while the model runs (0 = off)."
    )
    reconnect: bool = Field(
        True, description="Live sources: reopen with exponential back-off when the camera or stream disappears."
    )
    retry_initial_s: float = Field(
        0.5, ge=0.01, le=3600.0, description="First reopen delay (seconds); doubles up to retry_max_s."
    )
    retry_max_s: float = Field(30.0, ge=0.01, le=86400.0, description="Longest reopen delay (seconds).")
    retry_max_attempts: int = Field(
        0, ge=0, description="Give up after this many consecutive failed reopen attempts (0 = never give up)."
    )
    timeout_s: float = Field(
        10.0,
        ge=0.1,
        le=3600.0,
        description="Live sources: seconds without a frame (or to open a stream) before it counts as lost.",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport: `tcp` survives lossy Wi-Fi; `udp` has less delay on a clean LAN."
    )

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(
                f"retry_max_s ({self.retry_max_s}) must be at least retry_initial_s ({self.retry_initial_s})"
            )
        return self
