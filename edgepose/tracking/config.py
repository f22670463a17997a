"""Tracking settings (section ``[tracking]`` of the device config)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_age: int = Field(30, ge=0, description="frames a track survives without a match")
    min_similarity: float = Field(0.2, ge=0.0, le=1.0, description="OKS below which a pose never joins a track")
