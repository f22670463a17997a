"""Multi-person tracker: OKS similarity + optimal assignment, with missed-frame tolerance.

Each frame, every live track predicts where its keypoints are now (last
position + last velocity x elapsed time), the tracker scores every
(track, pose) pair by object keypoint similarity (OKS, COCO's keypoint
metric, scaled by the track's size) and solves the assignment with the
Hungarian method (``scipy.optimize.linear_sum_assignment``). Pairs below
``min_similarity`` are not matched, and neither are pairs further apart than the
distance gate: the median move of the parts both see, in the track's torso sizes,
must stay under ``gate_torso + gate_speed x seconds since the track was last seen``.
OKS is scaled by the track's box, so a track whose person was lost for a few frames
could otherwise hop to a small blob or a person a few metres away. Unmatched poses start new tracks with a
fresh ID from a counter that never goes back, so IDs are never reused;
unmatched tracks survive ``max_age`` frames.

Why not norfair: see edgepose/actions/README.md (it pins numpy < 2, which the device
runtime cannot take, and was no more accurate on our sequences).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .. import geometry as g
from ..types import Pose
from .config import TrackingConfig
from .smoothing import OneEuroFilter


@dataclass
class Track:
    id: int
    keypoints: np.ndarray  # (17, 2) last matched (raw) position of each part
    visible: np.ndarray  # (17,) parts ever seen
    last_ts: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((17, 2), np.float32))  # px / s
    hits: int = 1
    missed: int = 0
    smoother: OneEuroFilter | None = None
    torso: float = float("nan")  # px, smoothed; the distance gate's unit

    def predict(self, ts: float, use_velocity: bool) -> np.ndarray:
        if not use_velocity:
            return self.keypoints
        dt = min(max(ts - self.last_ts, 0.0), 1.0)  # extrapolating further than 1 s only adds error
        return self.keypoints + self.velocity * dt

    def area(self) -> float:
        a = g.bbox_area(self.keypoints, self.visible)
        # A floor keeps OKS from collapsing for tiny or degenerate (one-row) boxes.
        return max(a, 32.0 * 32.0)

    def scale(self) -> float:
        """Torso size in pixels, with the box as a fallback (never below 16 px)."""
        t = self.torso if np.isfinite(self.torso) else np.sqrt(self.area()) / 2.5
        return max(float(t), 16.0)

    def update_torso(self, t: float) -> None:
        """Fold in this frame's torso size (pixels; ``nan`` when it could not be measured)."""
        if np.isfinite(t):
            # Smoothed: one frame with a foreshortened torso must not shrink the gate.
            self.torso = float(t) if not np.isfinite(self.torso) else 0.7 * self.torso + 0.3 * float(t)


def torso_distances(
    pred: np.ndarray, tvis: np.ndarray, dk: np.ndarray, dvis: np.ndarray, scales: np.ndarray
) -> np.ndarray:
    """``(T, P)`` median distance over the parts both see, track ``t`` to pose ``p``, in units of ``scales[t]``.

    Pairs that share no part compare the means of their visible parts.
    """
    d = np.hypot(*np.moveaxis(pred[:, None] - dk[None], -1, 0))  # (T, P, 17)
    both = tvis[:, None, :] & dvis[None, :, :]
    cnt = both.sum(axis=-1)
    # Median by sorting: parts not seen by both sort last; the lower middle of the rest is the median.
    srt = np.sort(np.where(both, d, np.inf), axis=-1)
    med = np.take_along_axis(srt, np.maximum(cnt - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    tn, pn = np.maximum(tvis.sum(-1), 1)[:, None], np.maximum(dvis.sum(-1), 1)[:, None]
    ct = (pred * tvis[..., None]).sum(axis=1) / tn  # (T, 2)
    cp = (dk * dvis[..., None]).sum(axis=1) / pn  # (P, 2)
    centre = np.hypot(*np.moveaxis(ct[:, None] - cp[None], -1, 0))
    out = np.where(cnt > 0, med, centre) / scales[:, None]
    return np.nan_to_num(out, nan=np.inf).astype(np.float32)


class Tracker:
    """Gives every pose a ``track_id`` that stays with the person; see the module doc."""

    def __init__(self, config: TrackingConfig | None = None):
        self.config = config or TrackingConfig()
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_ts: float | None = None

    def reset(self) -> None:
        """Forget all tracks (a new source); IDs still never repeat."""
        self.tracks = []
        self._last_ts = None

    def similarity(self, poses: list[Pose], ts: float) -> np.ndarray:
        """OKS of every live track (rows) against every pose (columns)."""
        cfg = self.config
        if not self.tracks or not poses:
            return np.zeros((len(self.tracks), len(poses)), np.float32)
        pred = np.stack([t.predict(ts, cfg.predict_motion) for t in self.tracks])
        tvis = np.stack([t.visible for t in self.tracks])
        areas = np.array([t.area() for t in self.tracks], np.float32)
        dk = np.stack([p.keypoints for p in poses])
        dvis = np.stack([p.visible(cfg.min_part_score) for p in poses])
        sim = g.oks_matrix(pred, tvis, dk, dvis, areas, cfg.oks_sigma_scale)
        if cfg.gate_torso > 0:
            scales = np.array([t.scale() for t in self.tracks], np.float32)
            elapsed = np.array([min(max(ts - t.last_ts, 0.0), 1.0) for t in self.tracks], np.float32)
            gate = cfg.gate_torso + cfg.gate_speed * elapsed
            sim = np.where(torso_distances(pred, tvis, dk, dvis, scales) <= gate[:, None], sim, 0.0).astype(np.float32)
        return sim

    def update(self, poses: list[Pose], timestamp: float) -> list[Pose]:
        """Set ``track_id`` on ``poses`` (in place) and return those of reported tracks.

        Poses of tracks younger than ``min_hits`` frames keep ``track_id=None``
        and are left out of the result.
        """
        cfg = self.config
        ts = float(timestamp)
        if self._last_ts is not None and ts < self._last_ts:
            # Time went backwards: a looping file or a new source. Old tracks cannot match.
            self.reset()
        self._last_ts = ts
        sim = self.similarity(poses, ts)
        matched_t: set[int] = set()
        matched_p: dict[int, Track] = {}
        if sim.size:
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= cfg.min_similarity and sim[r, c] > 0:
                    matched_t.add(r)
                    matched_p[c] = self.tracks[r]
        for r, stale in enumerate(self.tracks):
            if r not in matched_t:
                stale.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= cfg.max_age]
        out: list[Pose] = []
        torsos = (
            np.asarray(
                g.torso_size(
                    np.stack([p.keypoints for p in poses]), np.stack([p.visible(cfg.min_part_score) for p in poses])
                ),
                np.float32,
            ).reshape(-1)
            if poses
            else np.zeros(0, np.float32)
        )
        for c, pose in enumerate(poses):
            vis = pose.visible(cfg.min_part_score)
            tr = matched_p.get(c)
            if tr is None:
                tr = Track(self._next_id, pose.keypoints.copy(), vis.copy(), ts)
                tr.update_torso(float(torsos[c]))
                self._next_id += 1
                if cfg.smoothing:
                    tr.smoother = OneEuroFilter(cfg.smoothing_min_cutoff, cfg.smoothing_beta, cfg.smoothing_d_cutoff)
                self.tracks.append(tr)
            else:
                self._advance(tr, pose.keypoints, vis, ts)
                tr.update_torso(float(torsos[c]))
            if tr.smoother is not None:
                pose.extra["raw_keypoints"] = pose.keypoints.copy()
                scale = g.torso_size(pose.keypoints, vis)
                pose.keypoints = tr.smoother(pose.keypoints, ts, vis, float(scale))
            if tr.hits >= cfg.min_hits:
                pose.track_id = tr.id
                out.append(pose)
            else:
                pose.track_id = None
        return out

    @staticmethod
    def _advance(tr: Track, kp: np.ndarray, vis: np.ndarray, ts: float) -> None:
        dt = ts - tr.last_ts
        both = vis & tr.visible
        if dt > 0:
            v = (kp - tr.keypoints) / dt
            # Damp the velocity estimate: detections jitter, and a wrong jump must not fling the prediction.
            tr.velocity = np.where(both[:, None], 0.5 * tr.velocity + 0.5 * v, tr.velocity * 0.5).astype(np.float32)
        tr.keypoints = np.where(vis[:, None], kp, tr.keypoints + tr.velocity * max(dt, 0.0)).astype(np.float32)
        tr.visible = tr.visible | vis
        tr.last_ts = ts
        tr.hits += 1
        tr.missed = 0
