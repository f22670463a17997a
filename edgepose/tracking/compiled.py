"""The tracker compiled with numba: :class:`~edgepose.tracking.tracker.Tracker`'s algorithm, one row per track.

:class:`~edgepose.tracking.tracker.Tracker` is the reference (and the fallback
where numba does not load); :class:`CompiledTracker` keeps the same state as
arrays (keypoints, parts seen, velocity, last time, hits, misses, torso size, id
per track) and computes a frame in two compiled calls around scipy's Hungarian
solver: the (track, pose) similarity with its distance gate, then the update
(misses, expiry, new tracks, motion, torso sizes). The reference pays for a few
hundred small numpy calls per frame, whatever the number of people; the
arithmetic is the same, in the same precision, and a test checks that both give
the same IDs frame for frame. Smoothing (off by default) stays in Python, one
filter per track as in the reference.

Importing this module imports numba (see :mod:`edgepose.jit` for its cache);
:func:`warm_up` compiles or loads the kernels, so that no frame pays for it.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from .. import geometry as g
from ..jit import first_call, njit
from ..types import NUM_KEYPOINTS, Pose, PoseBlock
from .config import TrackingConfig
from .smoothing import OneEuroFilter
from .tracker import Track, Tracker

_LS, _RS, _LH, _RH = g.L_SHOULDER, g.R_SHOULDER, g.L_HIP, g.R_HIP
_F32 = np.float32


@njit
def _extent(kp, vis):
    """How many parts are visible and their box ``(n, x0, y0, x1, y1)`` (float32)."""
    cnt = 0
    x0 = y0 = np.float32(np.inf)
    x1 = y1 = np.float32(-np.inf)
    for j in range(kp.shape[0]):
        if vis[j]:
            cnt += 1
            x0, x1 = min(x0, kp[j, 0]), max(x1, kp[j, 0])
            y0, y1 = min(y0, kp[j, 1]), max(y1, kp[j, 1])
    return cnt, x0, y0, x1, y1


@njit
def _bbox_area(kp, vis):
    """:func:`edgepose.geometry.bbox_area` of one track (float32 box, as the reference)."""
    cnt, x0, y0, x1, y1 = _extent(kp, vis)
    if cnt < 2:
        return 0.0
    return np.float64((x1 - x0) * (y1 - y0))


@njit
def _midpoint(kp, vis, a, b):
    """:func:`edgepose.geometry.midpoint`: both, one, or nan."""
    if vis[a] and vis[b]:
        return (kp[a, 0] + kp[b, 0]) * np.float32(0.5), (kp[a, 1] + kp[b, 1]) * np.float32(0.5)
    if vis[a]:
        return kp[a, 0], kp[a, 1]
    if vis[b]:
        return kp[b, 0], kp[b, 1]
    return np.float32(np.nan), np.float32(np.nan)


@njit
def _torso_size(kp, vis):
    """:func:`edgepose.geometry.torso_size` of one pose (float32; nan when it cannot be measured)."""
    nx, ny = _midpoint(kp, vis, _LS, _RS)
    hx, hy = _midpoint(kp, vis, _LH, _RH)
    d_torso = np.float32(math.hypot(nx - hx, ny - hy))
    if np.isnan(d_torso):
        d_torso = np.float32(0.0)
    d_sh = np.float32(0.0)
    if vis[_LS] and vis[_RS]:
        d_sh = np.float32(1.5) * np.float32(math.hypot(kp[_LS, 0] - kp[_RS, 0], kp[_LS, 1] - kp[_RS, 1]))
    cnt, x0, y0, x1, y1 = _extent(kp, vis)
    ext = np.float32(0.0)
    if cnt >= 2:
        ext = np.float32(math.hypot(x1 - x0, y1 - y0)) / np.float32(3.4)
    fallback = max(d_sh, ext)
    best = d_torso if d_torso >= np.float32(0.5) * fallback else fallback
    return best if best > 1e-6 else np.float32(np.nan)


@njit
def _similarity(kp, vis, vel, last_ts, torso, n, dk, dvis, ts, predict, var, gate_torso, gate_speed):
    """:meth:`Tracker.similarity`: ``(n, P)`` OKS of the tracks' predicted parts against the poses, 0 where no
    part is seen by both or the median move of those parts, in the track's torso sizes, fails the gate."""
    npose = dk.shape[0]
    k = dk.shape[1]
    sim = np.zeros((n, npose), np.float32)
    pred = np.empty((k, 2), np.float32)
    d = np.empty(k, np.float32)
    for t in range(n):
        elapsed = min(max(ts - last_ts[t], 0.0), 1.0)  # extrapolating further than 1 s only adds error
        dt = np.float32(elapsed)
        for j in range(k):
            for c in range(2):
                pred[j, c] = kp[t, j, c] + vel[t, j, c] * dt if predict else kp[t, j, c]
        # A floor keeps OKS from collapsing for tiny or degenerate (one-row) boxes.
        area = np.float32(max(_bbox_area(kp[t], vis[t]), 1024.0))
        denom_area = np.float32(2.0) * max(area, np.float32(1.0))
        scale = torso[t] if np.isfinite(torso[t]) else math.sqrt(max(_bbox_area(kp[t], vis[t]), 1024.0)) / 2.5
        scale32 = np.float32(max(scale, 16.0))
        gate = np.float32(gate_torso) + np.float32(gate_speed) * dt
        for p in range(npose):
            s = np.float32(0.0)
            cnt = 0
            for j in range(k):
                if vis[t, j] and dvis[p, j]:
                    dx = pred[j, 0] - dk[p, j, 0]
                    dy = pred[j, 1] - dk[p, j, 1]
                    s += np.float32(np.exp(-(dx * dx + dy * dy) / (denom_area * var[j])))
                    d[cnt] = np.float32(math.hypot(dx, dy))
                    cnt += 1
            if cnt == 0:
                continue  # OKS 0 (the gate cannot raise it)
            if gate_torso > 0:
                srt = np.sort(d[:cnt])
                dist = np.float32(np.float64(srt[(cnt - 1) // 2]) / np.float64(scale32))
                if not dist <= gate:  # nan (a nan part) fails as the reference's inf does
                    continue
            sim[t, p] = np.float32(np.float64(s) / cnt)
    return sim


@njit
def _update(kp, vis, vel, last_ts, hits, missed, torso, ids, n, dk, dvis, ts, track_of_pose, max_age, next_id,
            out_ids, out_hits, out_torso):
    """:meth:`Tracker.update` after the assignment: unmatched tracks miss a frame and expire past ``max_age``
    (rows compacted in order), matched ones move, unmatched poses start tracks (appended, in pose order;
    the arrays have room). Per pose: its track's id and hits, and its torso size. Returns (tracks, next id)."""
    npose = dk.shape[0]
    k = dk.shape[1]
    matched = np.zeros(n, np.bool_)
    for p in range(npose):
        if track_of_pose[p] >= 0:
            matched[track_of_pose[p]] = True
    row_of = np.full(n, -1, np.int64)
    m = 0
    for t in range(n):
        if not matched[t]:
            missed[t] += 1
        if missed[t] <= max_age:
            if m != t:
                kp[m] = kp[t]
                vis[m] = vis[t]
                vel[m] = vel[t]
                last_ts[m] = last_ts[t]
                hits[m] = hits[t]
                missed[m] = missed[t]
                torso[m] = torso[t]
                ids[m] = ids[t]
            row_of[t] = m
            m += 1
    for p in range(npose):
        tsz = _torso_size(dk[p], dvis[p])
        out_torso[p] = tsz
        t = track_of_pose[p]
        if t < 0:
            r = m
            m += 1
            ids[r] = next_id
            next_id += 1
            kp[r] = dk[p]
            vis[r] = dvis[p]
            vel[r] = 0.0
            last_ts[r] = ts
            hits[r] = 1
            missed[r] = 0
            torso[r] = np.nan
        else:
            r = row_of[t]
            dt = ts - last_ts[r]
            dt32 = np.float32(dt)
            if dt > 0:
                for j in range(k):
                    both = dvis[p, j] and vis[r, j]
                    for c in range(2):
                        v = (dk[p, j, c] - kp[r, j, c]) / dt32
                        # Damped: detections jitter, and a wrong jump must not fling the prediction.
                        vel[r, j, c] = np.float32(0.5) * vel[r, j, c] + np.float32(0.5) * v if both else vel[r, j, c] * np.float32(0.5)
            step = np.float32(max(dt, 0.0))
            for j in range(k):
                for c in range(2):
                    kp[r, j, c] = dk[p, j, c] if dvis[p, j] else kp[r, j, c] + vel[r, j, c] * step
                vis[r, j] = vis[r, j] or dvis[p, j]
            last_ts[r] = ts
            hits[r] += 1
            missed[r] = 0
        if np.isfinite(tsz):  # smoothed: one frame with a foreshortened torso must not shrink the gate
            torso[r] = np.float64(tsz) if not np.isfinite(torso[r]) else 0.7 * torso[r] + 0.3 * np.float64(tsz)
        out_ids[p] = ids[r]
        out_hits[p] = hits[r]
    return m, next_id


class CompiledTracker(Tracker):
    """:class:`Tracker` with its per-frame work in two compiled calls; same settings, same IDs."""

    def __init__(self, config: TrackingConfig | None = None):
        super().__init__(config)
        self._var = ((2.0 * g.COCO_SIGMAS * self.config.oks_sigma_scale) ** 2).astype(np.float32)
        self._n = 0
        self._alloc(16)
        self._smoothers: dict[int, OneEuroFilter] = {}

    def _alloc(self, rows: int) -> None:
        old = getattr(self, "_kp", None)
        k = NUM_KEYPOINTS
        arrays: tuple[np.ndarray, ...] = (np.zeros((rows, k, 2), np.float32), np.zeros((rows, k), np.bool_), np.zeros((rows, k, 2), np.float32),
                  np.zeros(rows), np.zeros(rows, np.int64), np.zeros(rows, np.int64), np.full(rows, np.nan), np.zeros(rows, np.int64))
        if old is not None:
            for new, cur in zip(arrays, self._state()):
                new[: self._n] = cur[: self._n]
        self._kp, self._vis, self._vel, self._last, self._hits, self._missed, self._torso, self._ids = arrays

    def _state(self) -> tuple[np.ndarray, ...]:
        return self._kp, self._vis, self._vel, self._last, self._hits, self._missed, self._torso, self._ids

    @property
    def tracks(self) -> list[Track]:
        """The live tracks as :class:`Track` copies (inspection; the state is the arrays)."""
        return [Track(int(self._ids[t]), self._kp[t].copy(), self._vis[t].copy(), float(self._last[t]), self._vel[t].copy(),
                      int(self._hits[t]), int(self._missed[t]), self._smoothers.get(int(self._ids[t])), float(self._torso[t]))
                for t in range(self._n)]

    @tracks.setter
    def tracks(self, value: list[Track]) -> None:
        if value:
            raise AttributeError("CompiledTracker keeps its tracks as arrays: only clearing them (reset) is supported")
        self._n = 0
        self._smoothers = {}

    def _poses(self, poses: list[Pose], block: PoseBlock | None) -> tuple[np.ndarray, np.ndarray]:
        """The poses' keypoints and visibility as arrays; ``block``: ``PoseBlock.of(poses)``."""
        if not poses:
            return np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.bool_)
        if block is not None:  # the decoder's arrays as they are (the kernels only read them)
            return block.keypoints, block.scores >= self.config.min_part_score
        dk = np.ascontiguousarray(np.array([p.keypoints for p in poses], np.float32))
        dvis = np.array([p.scores for p in poses]) >= self.config.min_part_score
        return dk, dvis

    def _sim(self, dk: np.ndarray, dvis: np.ndarray, ts: float) -> np.ndarray:
        cfg = self.config
        return _similarity(self._kp, self._vis, self._vel, self._last, self._torso, self._n, dk, dvis, ts,
                           cfg.predict_motion, self._var, float(cfg.gate_torso), float(cfg.gate_speed))

    def similarity(self, poses: list[Pose], ts: float) -> np.ndarray:
        return self._sim(*self._poses(poses, PoseBlock.of(poses)), float(ts))

    def update(self, poses: list[Pose], timestamp: float) -> list[Pose]:
        cfg = self.config
        ts = float(timestamp)
        if self._last_ts is not None and ts < self._last_ts:
            self.reset()  # time went backwards: a looping file or a new source
        self._last_ts = ts
        block = PoseBlock.of(poses)
        dk, dvis = self._poses(poses, block)
        npose = len(poses)
        track_of_pose = np.full(npose, -1, np.int64)
        if self._n and npose:
            sim = self._sim(dk, dvis, ts)
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows.tolist(), cols.tolist()):
                if sim[r, c] >= cfg.min_similarity and sim[r, c] > 0:
                    track_of_pose[c] = r
        if self._n + npose > len(self._ids):
            self._alloc(2 * (self._n + npose))
        out_ids = np.empty(npose, np.int64)
        out_hits = np.empty(npose, np.int64)
        torsos = np.empty(npose, np.float32)
        self._n, self._next_id = _update(*self._state(), self._n, dk, dvis, ts, track_of_pose, cfg.max_age, self._next_id,
                                         out_ids, out_hits, torsos)
        if cfg.smoothing:
            self._smooth(poses, dvis, torsos, ts, out_ids, block is not None)
        out: list[Pose] = []
        for pose, tid, hits in zip(poses, out_ids.tolist(), out_hits.tolist()):
            if hits >= cfg.min_hits:
                pose.track_id = tid
                out.append(pose)
            else:
                pose.track_id = None
        return out

    def _smooth(self, poses: list[Pose], dvis: np.ndarray, torsos: np.ndarray, ts: float, ids: np.ndarray, in_block: bool) -> None:
        cfg = self.config
        live = set(self._ids[: self._n].tolist())
        for gone in [i for i in self._smoothers if i not in live]:
            del self._smoothers[gone]
        for c, (pose, tid) in enumerate(zip(poses, ids.tolist())):
            f = self._smoothers.get(tid)
            if f is None:
                f = self._smoothers[tid] = OneEuroFilter(cfg.smoothing_min_cutoff, cfg.smoothing_beta, cfg.smoothing_d_cutoff)
            pose.extra["raw_keypoints"] = pose.keypoints.copy()
            smoothed = f(pose.keypoints, ts, dvis[c], float(torsos[c]))
            if in_block:  # into the frame's block, which stays whole for the encoders
                pose.keypoints[:] = smoothed
            else:  # a new array: the caller's, which Pose did not copy, stays as it was
                pose.keypoints = smoothed


def warm_up() -> tuple[float, str]:
    """Compile or load the kernels now: ``(seconds, "compiled" | "loaded from cache" | "ready")``."""
    from ..actions.synthetic import figure_pose, standing

    def run() -> None:
        tr = CompiledTracker()
        for k in range(2):
            tr.update([figure_pose(standing(400.0, x=100.0 + k, size=60.0), 0.9)], k / 30)

    return first_call(_similarity, run, "tracker")
