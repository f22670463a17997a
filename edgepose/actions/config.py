"""Action-recognition settings (section ``[actions]`` of the device config).

Every length is in torso sizes (neck-to-hip distance) and every time in
seconds, so the thresholds hold at any distance from the camera and any
frame rate.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from ..config_base import ConfigModel


class ActionsConfig(ConfigModel):
    enabled: bool = Field(True, description="recognise actions at all")
    rules: list[str] = Field(
        default_factory=lambda: ["fall", "hands_raised", "waving", "squat", "posture"],
        description="the rule recognisers that run: any of fall, hands_raised, waving, squat, posture",
    )
    min_part_score: float = Field(0.2, ge=0.0, le=1.0, description="keypoints scoring less count as not seen")
    forget_after_s: float = Field(
        2.0, gt=0.0, le=3600.0, description="a track unseen this long is forgotten (its open actions end)"
    )

    # Posture: standing / sitting / lying, reported as start/end events.
    posture_min_s: float = Field(
        1.0, ge=0.0, le=60.0, description="a new posture must hold this long before it is reported"
    )
    lying_min_tilt_deg: float = Field(55.0, ge=0.0, le=90.0, description="torso at least this far from vertical")
    lying_max_height: float = Field(
        1.2, gt=0.0, le=10.0, description="vertical extent of the body, torso sizes, at most this"
    )
    sitting_max_thigh_drop: float = Field(
        0.55, gt=0.0, le=2.0, description="knee at most this far below the hip (thigh ~horizontal)"
    )
    standing_min_leg_drop: float = Field(1.2, gt=0.0, le=5.0, description="ankles at least this far below the hips")

    # Fall: fast drop of the body centre that ends lying, and stays lying.
    fall_min_drop: float = Field(1.0, gt=0.0, le=10.0, description="torso sizes the body centre must drop")
    fall_max_drop_s: float = Field(1.0, gt=0.0, le=10.0, description="...within this many seconds")
    fall_settle_s: float = Field(1.5, ge=0.0, le=10.0, description="lying must start within this long after the drop")
    fall_persist_s: float = Field(1.0, ge=0.0, le=60.0, description="and last this long before the fall is reported")

    # Hands raised: wrist above the shoulder line.
    hands_raised_min_height: float = Field(
        0.4, ge=0.0, le=5.0, description="wrist at least this far above its shoulder"
    )
    hands_raised_min_hands: int = Field(1, ge=1, le=2, description="1: either hand, 2: both hands")
    hands_raised_min_s: float = Field(
        0.4, ge=0.0, le=60.0, description="held this long before start; lowered this long before end"
    )

    # Waving: a raised forearm swinging side to side.
    wave_window_s: float = Field(2.0, gt=0.0, le=30.0, description="look-back window for swings")
    wave_min_swings: int = Field(3, ge=1, le=50, description="direction changes of the wrist within the window")
    wave_min_amplitude: float = Field(
        0.25, gt=0.0, le=5.0, description="each swing moves the wrist at least this far sideways"
    )
    wave_max_speed: float = Field(
        8.0, gt=0.0, le=100.0, description="torso sizes/s; faster wrist moves are detection jumps, ignored"
    )

    # Squat: knee angle goes below down_angle then back above up_angle = one repetition.
    squat_down_angle: float = Field(115.0, ge=30.0, le=180.0, description="knee angle (deg) counted as down")
    squat_up_angle: float = Field(155.0, ge=30.0, le=180.0, description="knee angle (deg) counted as up again")
    squat_max_hip_height: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="at the bottom, hips at most this fraction of their standing height above the ankles",
    )
    squat_max_tilt_deg: float = Field(
        50.0, ge=0.0, le=90.0, description="torso at most this far from vertical while squatting"
    )

    # Learned classifier (an int8 .tflite exported by `edgepose actions train`).
    model_path: str | None = Field(None, description="action classifier .tflite; none = rules only")
    model_threads: int = Field(1, ge=1, le=16, description="interpreter threads for the classifier")
    model_min_confidence: float = Field(0.6, ge=0.0, le=1.0, description="softmax probability needed to report a class")
    model_stride: int = Field(2, ge=1, le=100, description="classify every Nth window tick (per track)")
    model_smoothing: int = Field(
        3, ge=1, le=50, description="a class must win this many classifications in a row to start"
    )
    model_ignore: list[str] = Field(default_factory=list, description="classes never reported (e.g. 'stand')")

    @model_validator(mode="after")
    def _check(self) -> ActionsConfig:
        known = {"fall", "hands_raised", "waving", "squat", "posture"}
        bad = [r for r in self.rules if r not in known]
        if bad:
            raise ValueError(f"unknown rule(s) {bad}; known: {sorted(known)}")
        if self.squat_up_angle <= self.squat_down_angle:
            raise ValueError("squat_up_angle must be greater than squat_down_angle")
        return self
