"""Capture settings (section ``[source]`` of the device config)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``picamera2``, a camera index (``0``), a video file, an image or a folder of images, or an ``rtsp://`` URL.
    uri: str = "0"
    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)
    fps: float | None = Field(None, gt=0)
    loop: bool = False
