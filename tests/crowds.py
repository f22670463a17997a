"""Synthetic multi-person scenes with known identities, for tracker tests and benchmarks.

People walk back and forth at different distances (sizes) so their paths
cross, detections jitter, go missing for single frames and short gaps, and
a few low-score ghost poses appear, as PoseNet's do.
"""

from __future__ import annotations

import math

import numpy as np

from edgepose.actions.synthetic import Figure, figure_pose
from edgepose.types import Pose


def crowd_scene(
    people: int = 5,
    seconds: float = 10.0,
    fps: float = 15.0,
    noise: float = 0.03,
    miss_rate: float = 0.05,
    gap_rate: float = 0.01,
    ghost_rate: float = 0.05,
    width: float = 1280.0,
    height: float = 720.0,
    seed: int = 0,
) -> tuple[list[float], list[list[Pose]], list[list[int]]]:
    """``(timestamps, poses per frame, true person id per pose)``; ghosts have id ``-1``.

    ``noise`` is keypoint jitter in torso sizes; ``miss_rate`` the chance a
    person is not detected in a frame; ``gap_rate`` the chance a 5-15 frame
    gap starts (occlusion); ``ghost_rate`` the chance of a spurious pose.
    """
    rng = np.random.default_rng(seed)
    size = rng.uniform(35, 110, people)
    floor = height * 0.35 + (size - 35) / 75 * height * 0.6  # bigger = nearer = lower in the image
    speed = rng.uniform(0.6, 2.0, people) * size  # px/s: 0.6-2 torso sizes a second
    phase = rng.uniform(0, 2 * math.pi, people)
    x0 = rng.uniform(0.15, 0.85, people) * width
    span = rng.uniform(0.15, 0.4, people) * width
    gap_left = np.zeros(people, int)
    n = int(seconds * fps)
    ts, frames, truth = [], [], []
    for k in range(n):
        t = k / fps
        poses, ids = [], []
        for i in range(people):
            if gap_left[i] > 0:
                gap_left[i] -= 1
                continue
            if rng.random() < gap_rate:
                gap_left[i] = int(rng.integers(5, 16))
                continue
            if rng.random() < miss_rate:
                continue
            # Back and forth along x (a triangle-ish path via sin), legs swinging with the gait.
            x = x0[i] + span[i] * math.sin(phase[i] + t * speed[i] / max(span[i], 1.0))
            swing = 25.0 * math.sin(2 * math.pi * 1.8 * t + phase[i])
            f = Figure(
                x=x,
                y=floor[i] - 1.9 * size[i],
                size=size[i],
                hip_flex=swing,
                knee_flex=abs(swing) * 0.6,
                l_arm=abs(swing) * 0.6,
                r_arm=abs(swing) * 0.6,
            )
            p = figure_pose(f, score=float(rng.uniform(0.5, 0.95)))
            p.keypoints = p.keypoints + rng.normal(0, noise * size[i], p.keypoints.shape).astype(np.float32)
            # Parts drop out now and then.
            p.scores = np.where(rng.random(17) < 0.1, 0.05, p.scores).astype(np.float32)
            poses.append(p)
            ids.append(i)
        if rng.random() < ghost_rate:
            s = rng.uniform(20, 50)
            f = Figure(x=rng.uniform(0, width), y=rng.uniform(0, height), size=s)
            g = figure_pose(f, score=0.3)
            g.keypoints = g.keypoints + rng.normal(0, 0.3 * s, g.keypoints.shape).astype(np.float32)
            poses.append(g)
            ids.append(-1)
        order = rng.permutation(len(poses))  # detectors list people in no stable order
        ts.append(t)
        frames.append([poses[o] for o in order])
        truth.append([ids[o] for o in order])
    return ts, frames, truth
