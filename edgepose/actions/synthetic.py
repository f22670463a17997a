"""A parametric stick figure for synthetic pose sequences (tests, benchmarks, demos).

Real recordings of falls are rare and cannot ship with the project, so rule
tests drive the recognisers with figures posed by a few joint angles. The
figure is seen from a three-quarter view (forward motion shows at 60 % in x)
with left and right parts apart, like a person facing the camera at an angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..types import KEYPOINT_INDEX, NUM_KEYPOINTS, Pose

FORWARD = 0.6  # how much of forward-backward motion shows in x


@dataclass(frozen=True)
class Figure:
    """Pose parameters. Lengths in torso sizes ``size`` px; angles in degrees."""

    x: float = 320.0  # hip centre, px
    y: float = 300.0
    size: float = 80.0  # neck-to-hip, px
    tilt: float = 0.0  # upper body bent from vertical about the hips, in the image plane (90 = horizontal)
    roll: float = 0.0  # whole body rotated about the hips in the image plane (90 = lying)
    hip_flex: float = 0.0  # thigh forward from straight down (90 = thighs horizontal, sitting)
    knee_flex: float = 0.0  # shank back from the thigh line (90 = right angle)
    l_arm: float = 0.0  # upper arm raised sideways from hanging (180 = straight up)
    r_arm: float = 0.0
    l_elbow: float = 0.0  # forearm bent further in the same direction
    r_elbow: float = 0.0

    def with_(self, **kw: float) -> Figure:
        return replace(self, **kw)


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def figure_keypoints(f: Figure) -> np.ndarray:
    """``(17, 2)`` image keypoints of figure ``f`` (y grows downwards)."""
    k = KEYPOINT_INDEX
    pts = np.zeros((NUM_KEYPOINTS, 2), np.float64)
    neck = np.array([0.0, -1.0])
    pts[k["nose"]] = neck + [0.0, -0.45]
    pts[k["left_eye"]] = neck + [0.08, -0.52]
    pts[k["right_eye"]] = neck + [-0.08, -0.52]
    pts[k["left_ear"]] = neck + [0.16, -0.47]
    pts[k["right_ear"]] = neck + [-0.16, -0.47]
    for side, sgn, arm, elbow in (("left", 1.0, f.l_arm, f.l_elbow), ("right", -1.0, f.r_arm, f.r_elbow)):
        sh = neck + [0.32 * sgn, 0.0]
        a1 = math.radians(arm)
        e = sh + 0.6 * np.array([sgn * math.sin(a1), math.cos(a1)])
        a2 = math.radians(arm + elbow)
        w = e + 0.55 * np.array([sgn * math.sin(a2), math.cos(a2)])
        pts[k[f"{side}_shoulder"]], pts[k[f"{side}_elbow"]], pts[k[f"{side}_wrist"]] = sh, e, w
        hip = np.array([0.18 * sgn, 0.0])
        h1 = math.radians(f.hip_flex)
        knee = hip + 0.95 * np.array([FORWARD * math.sin(h1), math.cos(h1)])
        h2 = math.radians(f.hip_flex - f.knee_flex)
        ankle = knee + 0.95 * np.array([FORWARD * math.sin(h2), math.cos(h2)])
        pts[k[f"{side}_hip"]], pts[k[f"{side}_knee"]], pts[k[f"{side}_ankle"]] = hip, knee, ankle
    # The upper body tilts about the hips; legs keep their own angles (relative to the image vertical).
    upper = [
        k[n]
        for n in (
            "nose",
            "left_eye",
            "right_eye",
            "left_ear",
            "right_ear",
            "left_shoulder",
            "right_shoulder",
            "left_elbow",
            "right_elbow",
            "left_wrist",
            "right_wrist",
        )
    ]
    pts[upper] = _rot(pts[upper], f.tilt)
    pts = _rot(pts, f.roll)
    return (pts * f.size + [f.x, f.y]).astype(np.float32)


def figure_pose(f: Figure, score: float = 0.9) -> Pose:
    return Pose(figure_keypoints(f), np.full(NUM_KEYPOINTS, score, np.float32), score)


#: Hip height above the floor of a standing figure, in torso sizes (legs 2 x 0.95).
STANDING_HIP = 1.9


def standing(floor_y: float = 460.0, x: float = 320.0, size: float = 80.0) -> Figure:
    return Figure(x=x, y=floor_y - STANDING_HIP * size, size=size)


def lying(f: Figure, floor_y: float) -> Figure:
    """``f`` lying on the floor: whole body horizontal, hips just above the floor."""
    return f.with_(roll=90.0, tilt=0.0, hip_flex=0.0, knee_flex=0.0, y=floor_y - 0.3 * f.size)


def sitting(f: Figure, floor_y: float) -> Figure:
    """``f`` on a chair: thighs horizontal, shanks vertical."""
    return f.with_(hip_flex=90.0, knee_flex=90.0, y=floor_y - 0.95 * f.size, roll=0.0, tilt=0.0)


def interpolate(a: Figure, b: Figure, u: float) -> Figure:
    """Linear blend of two figures' parameters, ``u`` in [0, 1]."""
    u = min(max(u, 0.0), 1.0)
    vals = {name: (1 - u) * getattr(a, name) + u * getattr(b, name) for name in a.__dataclass_fields__}
    return Figure(**vals)


def sequence(
    keyframes: list[tuple[float, Figure]], fps: float = 30.0, noise_px: float = 0.0, seed: int = 0
) -> list[tuple[float, Pose]]:
    """Poses at ``fps`` moving linearly between ``(time, figure)`` key frames, with optional pixel noise."""
    rng = np.random.default_rng(seed)
    t_end = keyframes[-1][0]
    out = []
    n = int(round(t_end * fps)) + 1
    for i in range(n):
        t = i / fps
        j = max(idx for idx, (kt, _) in enumerate(keyframes) if kt <= t + 1e-9)
        if j == len(keyframes) - 1:
            f = keyframes[j][1]
        else:
            (t0, f0), (t1, f1) = keyframes[j], keyframes[j + 1]
            f = interpolate(f0, f1, (t - t0) / (t1 - t0))
        p = figure_pose(f)
        if noise_px:
            p.keypoints = p.keypoints + rng.normal(0, noise_px, p.keypoints.shape).astype(np.float32)
        out.append((t, p))
    return out


def squatting(f: Figure, floor_y: float, depth: float = 1.0) -> Figure:
    """``f`` in a squat (``depth`` 1 = thighs near horizontal), feet on the floor."""
    hf, kf = 80.0 * depth, 140.0 * depth
    drop = 0.95 * (math.cos(math.radians(hf)) + math.cos(math.radians(hf - kf)))
    return f.with_(hip_flex=hf, knee_flex=kf, y=floor_y - drop * f.size, roll=0.0, tilt=25.0 * depth)


def crowd(
    seqs: list, people: int, seconds: float = 20.0, fps: float = 30.0, src_fps: float = 10.0, seed: int = 0
) -> list[tuple[float, list[Pose]]]:
    """``(t, poses)`` frames of ``people`` tracked people (IDs 1..people) replaying recorded clips side by side.

    ``seqs`` are :class:`edgepose.actions.dataset.Sequence` clips (e.g. actions-9class); person ``k`` plays
    the longest clip of the ``k``-th label (labels in turn), looped, resampled from ``src_fps`` to ``fps`` by
    linear interpolation, shifted and scaled to its own place, with 1 px of jitter and detector-like scores
    (0.4-0.95 for seen parts, under 0.15 for missed ones).
    """
    from ..types import Pose

    labels = sorted({s.label for s in seqs})
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    t = np.arange(n) / fps
    tracks = []
    for k in range(people):
        s = max((q for q in seqs if q.label == labels[k % len(labels)]), key=lambda q: len(q.keypoints))
        u = (t * src_fps) % (len(s.keypoints) - 1)
        i0 = np.floor(u).astype(int)
        w = (u - i0)[:, None, None]
        kp = (1 - w) * s.keypoints[i0] + w * s.keypoints[i0 + 1]
        vis = s.visible[i0] & s.visible[i0 + 1]
        kp = kp * (0.6 + 0.1 * (k % 4)) + [(k - people / 2) * 120 + 640, 80 + 10 * (k % 3)]
        kp = kp + rng.normal(0, 1.0, kp.shape)
        sc = np.where(vis, rng.uniform(0.4, 0.95, vis.shape), rng.uniform(0.0, 0.15, vis.shape))
        tracks.append((kp.astype(np.float32), sc.astype(np.float32)))
    frames = []
    for f in range(n):
        poses = [Pose(kp[f], sc[f], 0.8, track_id=k + 1) for k, (kp, sc) in enumerate(tracks)]
        frames.append((float(t[f]), poses))
    return frames
