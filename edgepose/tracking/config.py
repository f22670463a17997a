"""Tracking settings (section ``[tracking]`` of the device config)."""

from __future__ import annotations

from pydantic import Field

from ..config_base import ConfigModel


class TrackingConfig(ConfigModel):
    enabled: bool = Field(True, description="Give each person a stable track id across frames.")
    max_age: int = Field(30, ge=0, le=10_000, description="frames a track survives without a match")
    min_similarity: float = Field(0.2, ge=0.0, le=1.0, description="OKS below which a pose never joins a track")
    oks_sigma_scale: float = Field(
        2.5, gt=0.0, le=20.0, description="widens COCO's per-part OKS tolerances (PoseNet jitters more than annotators)"
    )
    min_part_score: float = Field(0.2, ge=0.0, le=1.0, description="keypoints scoring less are ignored for matching")
    min_hits: int = Field(
        1,
        ge=1,
        le=100,
        description="matched frames before a track is reported (1: report at once; higher hides one-frame ghosts)",
    )
    predict_motion: bool = Field(
        True, description="match against each track's position extrapolated at its last velocity"
    )
    image_sequence: bool = Field(
        False,
        description="track across the images of a folder or glob (a time-lapse); off: each photo stands alone (edgepose run --sequence)",
    )
    # Distance gate: OKS alone lets a track hop to a small or distant pose when its person is briefly lost.
    gate_torso: float = Field(
        0.75,
        ge=0.0,
        le=100.0,
        description="largest move of a track between consecutive frames, in torso sizes (median over the parts both see); 0 turns the gate off",
    )
    gate_speed: float = Field(
        3.0,
        ge=0.0,
        le=1000.0,
        description="torso sizes per second the gate widens by for time since the track was last seen",
    )
    # One Euro filter (Casiez et al. 2012) per keypoint; speeds are measured in torso sizes per second,
    # so the same settings work near and far from the camera.
    smoothing: bool = Field(
        False, description="smooth keypoints per track (One Euro filter); raw ones kept in pose.extra"
    )
    smoothing_min_cutoff: float = Field(1.0, gt=0.0, le=100.0, description="Hz; lower = smoother at rest, more lag")
    smoothing_beta: float = Field(
        0.3, ge=0.0, le=100.0, description="cutoff increase per torso size/s of speed; higher = less lag when moving"
    )
    smoothing_d_cutoff: float = Field(1.0, gt=0.0, le=100.0, description="Hz; cutoff of the speed estimate")
