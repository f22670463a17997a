"""Rule-based action recognisers for one tracked person.

Each frame becomes an :class:`Observation` (the body measured in torso
sizes, so rules hold at any distance and position in the image); small state
machines turn the observations into :class:`~edgepose.types.ActionEvent`:

- ``posture``: ``standing`` / ``sitting`` / ``lying`` as start/end events once a posture has held ``posture_min_s``.
- ``fall``: an ``instant`` event when the body centre dropped at least ``fall_min_drop`` torso sizes within
  ``fall_max_drop_s``, the person was lying within ``fall_settle_s`` after that and stayed lying ``fall_persist_s``.
  Sitting down fast (not lying), bending over (hips stay high, legs vertical) and lying down slowly (drop too slow)
  are not falls.
- ``hands_raised``: start/end, wrist(s) held above the shoulder.
- ``waving``: start/end, a raised forearm swinging side to side.
- ``squat``: a ``count`` event per repetition (knee angle down, then up again).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .. import geometry as g
from ..types import ActionEvent
from .config import ActionsConfig


class Rule(Protocol):
    """One action rule for one track; rules with start/end actions also have ``close(tid, t)``."""

    def update(self, tid: int, o: Observation) -> list[ActionEvent]: ...


@dataclass
class Observation:
    """One frame of one person, measured for the rules (by :func:`measure`, for a frame's people at once)."""

    t: float
    kp: np.ndarray
    vis: np.ndarray
    scores: np.ndarray
    scale: float  # torso size, px (nan if unknown)
    centre_y: float  # body centre, px
    posture: str | None  # this frame's posture, before debouncing
    tilt: float = math.nan  # torso from vertical, degrees
    knee_angle: float = math.nan  # mean over the legs seen, degrees
    leg_drop: float = math.nan  # ankles below hips, px
    hands: tuple[str, ...] = ()  # wrists at least hands_raised_min_height above their shoulder
    #: per arm (left, right): (wrist, elbow and shoulder seen, forearm up at shoulder height, wrist x from the shoulder / scale)
    arms: tuple[tuple[bool, bool, float], ...] = ((False, False, math.nan), (False, False, math.nan))


_LEFT_KNEE_ANKLE, _RIGHT_KNEE_ANKLE = [g.L_KNEE, g.L_ANKLE], [g.R_KNEE, g.R_ANKLE]
_HIPS, _KNEES, _ANKLES = [g.L_HIP, g.R_HIP], [g.L_KNEE, g.R_KNEE], [g.L_ANKLE, g.R_ANKLE]
_WRISTS, _ELBOWS, _SHOULDERS = [g.L_WRIST, g.R_WRIST], [g.L_ELBOW, g.R_ELBOW], [g.L_SHOULDER, g.R_SHOULDER]


def _acos_deg(num: float, den: float) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, num / den))))


def _mean2(a: np.ndarray, b: np.ndarray, va: np.ndarray, vb: np.ndarray) -> np.ndarray:
    """Per row, ``np.mean`` of whichever of two float32 values is seen (float32, as np.mean of a list of them); nan if neither."""
    return np.where(va & vb, (a + b) / np.float32(2.0), np.where(va, a, np.where(vb, b, np.float32(np.nan))))


def measure(
    t: float,
    kp: np.ndarray,
    scores: np.ndarray,
    vis: np.ndarray,
    scales: list[float],
    cfg: ActionsConfig,
    body: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> list[Observation]:
    """The :class:`Observation` of each of a frame's people: ``kp (N, 17, 2)`` float32, ``scores``/``vis (N, 17)``, ``scales`` theirs.

    ``body``: :func:`edgepose.geometry.body_measures` of ``kp, vis`` if the caller has it already.

    Every quantity is computed for all rows at once with the float32 operations the per-person code used
    (``tests/actions_reference.py``), so each value, and so each event, is the same; only the arithmetic on
    Python floats (angles, divisions by the scale that the old code did in float64) stays per person.
    """
    y = kp[..., 1]
    sc32 = np.asarray(scales, np.float32)  # float32 array / Python float divided in float32: the same here
    neck, hip, _, centre = body if body is not None else g.body_measures(kp, vis)
    v = neck - hip
    # Left and right (or knee and ankle) side by side: one operation for both columns.
    kn_an = _mean2(y[:, _LEFT_KNEE_ANKLE], y[:, _RIGHT_KNEE_ANKLE], vis[:, _LEFT_KNEE_ANKLE], vis[:, _RIGHT_KNEE_ANKLE])
    kn_an_seen = vis[:, _LEFT_KNEE_ANKLE] | vis[:, _RIGHT_KNEE_ANKLE]
    thigh, shank = kp[:, _HIPS] - kp[:, _KNEES], kp[:, _ANKLES] - kp[:, _KNEES]
    dot = thigh[..., 0] * shank[..., 0] + thigh[..., 1] * shank[..., 1]  # float32, as np.dot of the two vectors
    legs_seen = vis[:, _HIPS] & vis[:, _KNEES] & vis[:, _ANKLES]
    raised = (
        vis[:, _WRISTS]
        & vis[:, _SHOULDERS]
        & ((kp[:, _SHOULDERS, 1] - kp[:, _WRISTS, 1]) / sc32[:, None] >= cfg.hands_raised_min_height)
    )
    arms_seen = vis[:, _WRISTS] & vis[:, _ELBOWS] & vis[:, _SHOULDERS]
    arms_up = (y[:, _WRISTS] < y[:, _ELBOWS]) & (y[:, _WRISTS] <= y[:, _SHOULDERS])
    height = (np.where(vis, y, -np.inf).max(axis=1) - np.where(vis, y, np.inf).min(axis=1)) / sc32
    # Two conversions to Python values (float32 values, exactly) instead of one per quantity.
    floats = np.column_stack(
        [
            centre[:, 1],
            np.hypot(v[:, 0], v[:, 1]),
            -v[:, 1],
            hip[:, 1],
            kn_an,
            dot,
            np.hypot(thigh[..., 0], thigh[..., 1]),
            np.hypot(shank[..., 0], shank[..., 1]),
            kp[:, _WRISTS, 0] - kp[:, _SHOULDERS, 0],
        ]
    ).tolist()
    flags = np.column_stack(
        [
            ~np.isnan(neck[:, 0]) & ~np.isnan(hip[:, 0]),
            ~np.isnan(hip[:, 0]),
            height <= cfg.lying_max_height,
            kn_an_seen,
            legs_seen,
            raised,
            arms_seen,
            arms_up,
        ]
    ).tolist()
    nvis = vis.sum(axis=1).tolist()
    out = []
    for i, (f, b, scale) in enumerate(zip(floats, flags, scales)):
        cy, v_norm, v_up, hip_y, knee_y, ankle_y, dot_l, dot_r, th_l, th_r, sh_l, sh_r, dx_l, dx_r = f
        torso_ok, hip_ok, flat, knees, ankles, seen_l, seen_r, up_hand_l, up_hand_r, arm_l, arm_r, up_l, up_r = b
        tilt = _acos_deg(v_up, v_norm) if torso_ok and v_norm >= 1e-6 else math.nan
        finite = math.isfinite(scale)
        # frame_posture, in its order of tests
        posture = None
        if finite and nvis[i] >= 5:
            if math.isfinite(tilt) and tilt >= cfg.lying_min_tilt_deg and flat:
                posture = "lying"
            elif math.isfinite(tilt) and tilt <= 35.0 and hip_ok and knees:
                if (knee_y - hip_y) / scale <= cfg.sitting_max_thigh_drop:
                    posture = "sitting"
                elif ankles and (ankle_y - hip_y) / scale >= cfg.standing_min_leg_drop:
                    posture = "standing"
        angles = []
        if seen_l and th_l > 1e-6 and sh_l > 1e-6:
            angles.append(_acos_deg(dot_l, th_l * sh_l))
        if seen_r and th_r > 1e-6 and sh_r > 1e-6:
            angles.append(_acos_deg(dot_r, th_r * sh_r))
        knee_angle = (angles[0] if len(angles) == 1 else (angles[0] + angles[1]) / 2) if angles else math.nan
        arms: tuple[tuple[bool, bool, float], ...]
        if finite:
            hands = (
                ("left", "right")
                if up_hand_l and up_hand_r
                else ("left",)
                if up_hand_l
                else ("right",)
                if up_hand_r
                else ()
            )
            arms = ((arm_l, up_l, dx_l / scale), (arm_r, up_r, dx_r / scale))
        else:
            hands, arms = (), Observation.arms
        out.append(
            Observation(
                t,
                kp[i],
                vis[i],
                scores[i],
                scale,
                cy,
                posture,
                tilt,
                knee_angle,
                ankle_y - hip_y if hip_ok and ankles else math.nan,
                hands,
                arms,
            )
        )
    return out


def observe(
    t: float, kp: np.ndarray, scores: np.ndarray, cfg: ActionsConfig, scale: float | None = None
) -> Observation:
    """Measure one frame; ``scale`` overrides the frame's own torso size (e.g. a running median)."""
    kp = np.asarray(kp, np.float32)
    vis = scores >= cfg.min_part_score
    if scale is None:
        scale = float(g.torso_size(kp, vis))
    return measure(t, kp[None], np.asarray(scores, np.float32)[None], vis[None], [float(scale)], cfg)[0]


def _conf(obs: Observation, parts: list[int]) -> float:
    """Confidence of a rule = mean score of the parts it looked at."""
    return float(np.mean(obs.scores[parts])) if parts else 0.0


_POSTURE_PARTS = [g.L_HIP, g.R_HIP, g.L_KNEE, g.R_KNEE, g.L_SHOULDER, g.R_SHOULDER]


class PostureRule:
    def __init__(self, cfg: ActionsConfig):
        self.cfg = cfg
        self.state: str | None = None
        self.since: float = 0.0
        self._cand: str | None = None
        self._cand_since: float = 0.0
        self._conf: list[float] = []

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        if o.posture is None:
            return []  # unclear frames neither confirm nor break a posture
        if o.posture != self._cand:
            self._cand, self._cand_since, self._conf = o.posture, o.t, []
        if self._cand == self.state:
            return []  # held: its confidences are not needed again (the list grew for as long as a posture lasted)
        self._conf.append(_conf(o, _POSTURE_PARTS))
        if o.t - self._cand_since < self.cfg.posture_min_s:
            return []
        ev = self.close(tid, self._cand_since)
        self.state, self.since = self._cand, self._cand_since
        ev.append(ActionEvent(tid, self.state, "start", self.since, confidence=float(np.mean(self._conf))))
        return ev

    def close(self, tid: int, t: float) -> list[ActionEvent]:
        if self.state is None:
            return []
        ev = [ActionEvent(tid, self.state, "end", self.since, end=t)]
        self.state = None
        return ev


class FallRule:
    def __init__(self, cfg: ActionsConfig):
        self.cfg = cfg
        self.hist: deque[tuple[float, float, float]] = deque()  # (t, centre_y, scale)
        # Sliding extremes of hist (max scale over it, min centre_y over the last fall_max_drop_s), kept as
        # monotonic queues: the old per-frame scans of 4.5 s of history were the rules' largest cost.
        self._smax: deque[tuple[float, float]] = deque()
        self._ymin: deque[tuple[float, float]] = deque()
        self._ordered = True  # time never went back; else the scans, which do not assume it
        self.drop: tuple[float, float, float] | None = None  # (drop start, drop end, drop in torso sizes)
        self.lying_since: float | None = None
        self.fallen = False

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        cfg = self.cfg
        if o.posture == "lying":
            self.lying_since = o.t if self.lying_since is None else self.lying_since
        elif o.posture is not None:
            self.lying_since = None
            self.fallen = False  # up again: a later fall counts anew
        if self.hist and o.t < self.hist[-1][0]:
            self._ordered = False
        if math.isfinite(o.centre_y) and math.isfinite(o.scale):
            self.hist.append((o.t, o.centre_y, o.scale))
            while self._smax and self._smax[-1][1] <= o.scale:
                self._smax.pop()
            self._smax.append((o.t, o.scale))
            while self._ymin and self._ymin[-1][1] >= o.centre_y:
                self._ymin.pop()
            self._ymin.append((o.t, o.centre_y))
        keep = max(cfg.fall_max_drop_s, 2.0) + cfg.fall_settle_s + cfg.fall_persist_s
        while self.hist and self.hist[0][0] < o.t - keep:
            self.hist.popleft()
        while self._smax and self._smax[0][0] < o.t - keep:
            self._smax.popleft()
        since = o.t - cfg.fall_max_drop_s
        while self._ymin and self._ymin[0][0] < since:
            self._ymin.popleft()
        # No position within fall_max_drop_s (a track unseen that long): no drop to measure.
        if len(self.hist) >= 2 and not self.fallen and (self._ymin or not self._ordered):
            # Scale from before the drop (the torso foreshortens while falling): the largest recent size.
            if self._ordered:
                ref, y_top = self._smax[0][1], self._ymin[0][1]
            else:
                ref = max(s for _, _, s in self.hist)
                y_top = min((y for t, y, _ in self.hist if t >= since), default=math.nan)
            drop = (self.hist[-1][1] - y_top) / ref
            if drop >= cfg.fall_min_drop and (self.drop is None or drop > self.drop[2]):
                # The drop starts when the body last left the top (noise must not date it earlier).
                t_top = max(t for t, y, _ in self.hist if t >= since and y <= y_top + 0.1 * ref)
                self.drop = (t_top, o.t, drop)
        if self.drop is None or self.fallen:
            return []
        t0, t1, drop = self.drop
        if self.lying_since is None or self.lying_since > t1 + cfg.fall_settle_s:
            if o.t > t1 + cfg.fall_settle_s:
                self.drop = None  # came down fast but did not end up lying: sat down, jumped, bent over
            return []
        if o.t - max(self.lying_since, t0) < cfg.fall_persist_s:
            return []
        self.fallen, self.drop = True, None
        speed_margin = min(1.0, drop / (2.0 * cfg.fall_min_drop))
        conf = 0.5 + 0.5 * speed_margin
        return [ActionEvent(tid, "fall", "instant", t0, end=o.t, confidence=conf, extra={"drop": round(drop, 2)})]


class HandsRaisedRule:
    def __init__(self, cfg: ActionsConfig):
        self.cfg = cfg
        self.active = False
        self.since = 0.0
        self._flip_since: float | None = None
        self._hands: list[str] = []

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        hands = list(o.hands)
        now = len(hands) >= self.cfg.hands_raised_min_hands
        if now == self.active:
            self._flip_since = None
            if now and not set(hands) <= set(self._hands):
                self._hands = sorted(set(self._hands) | set(hands))
            return []
        if self._flip_since is None:
            self._flip_since = o.t
        if o.t - self._flip_since < self.cfg.hands_raised_min_s:
            return []
        t = self._flip_since
        self._flip_since = None
        if now:
            self.active, self.since, self._hands = True, t, hands
            return [
                ActionEvent(
                    tid, "hands_raised", "start", t, confidence=_conf(o, [g.L_WRIST, g.R_WRIST]), extra={"hands": hands}
                )
            ]
        return self.close(tid, t)

    def close(self, tid: int, t: float) -> list[ActionEvent]:
        if not self.active:
            return []
        self.active = False
        return [ActionEvent(tid, "hands_raised", "end", self.since, end=t, extra={"hands": self._hands})]


class _SwingCounter:
    """Direction changes of a 1-D signal, each counted once it has moved ``amp`` from the last extreme."""

    def __init__(self, amp: float):
        self.amp = amp
        self.ext = self.hi = self.lo = 0.0
        self.dir: int | None = None  # None: no sample yet; 0: no direction yet
        self.swings: deque[float] = deque()

    def update(self, t: float, x: float) -> None:
        if self.dir is None:
            self.hi = self.lo = x
            self.dir = 0
        elif self.dir == 0:
            self.hi, self.lo = max(self.hi, x), min(self.lo, x)
            if self.hi - x >= self.amp:
                self.dir, self.ext = -1, x
            elif x - self.lo >= self.amp:
                self.dir, self.ext = 1, x
        elif self.dir > 0:
            if x > self.ext:
                self.ext = x
            elif x <= self.ext - self.amp:
                self.swings.append(t)
                self.dir, self.ext = -1, x
        else:
            if x < self.ext:
                self.ext = x
            elif x >= self.ext + self.amp:
                self.swings.append(t)
                self.dir, self.ext = 1, x

    def recent(self, since: float) -> int:
        while self.swings and self.swings[0] < since:
            self.swings.popleft()
        return len(self.swings)


class WavingRule:
    def __init__(self, cfg: ActionsConfig):
        self.cfg = cfg
        self.counters = {"left": _SwingCounter(cfg.wave_min_amplitude), "right": _SwingCounter(cfg.wave_min_amplitude)}
        self.up_seen = {"left": -math.inf, "right": -math.inf}
        self.last_x: dict[str, tuple[float, float]] = {}
        self.active: str | None = None
        self.since = 0.0
        self.last_active = 0.0

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        cfg = self.cfg
        if not math.isfinite(o.scale):
            return []
        waving = None
        for name, (seen, up, x) in zip(("left", "right"), o.arms):
            if not seen:
                continue
            # A wave is a forearm pointing up: wrist above the elbow and at least at shoulder height.
            if up:
                prev = self.last_x.get(name)
                self.last_x[name] = (o.t, x)
                # A wrist "moving" faster than a hand can is PoseNet jumping to another hand: skip it.
                if prev is not None and o.t > prev[0] and abs(x - prev[1]) / (o.t - prev[0]) > cfg.wave_max_speed:
                    continue
                self.up_seen[name] = o.t
                self.counters[name].update(o.t, x)
            if (
                o.t - self.up_seen[name] < 0.5
                and self.counters[name].recent(o.t - cfg.wave_window_s) >= cfg.wave_min_swings
            ):
                waving = name
        if waving and self.active is None:
            self.active, self.since = waving, o.t
            self.last_active = o.t
            return [
                ActionEvent(
                    tid,
                    "waving",
                    "start",
                    o.t,
                    confidence=_conf(o, [g.L_WRIST, g.R_WRIST, g.L_ELBOW, g.R_ELBOW]),
                    extra={"hand": waving},
                )
            ]
        if waving:
            self.last_active = o.t
            return []
        if self.active is not None and o.t - self.last_active >= 0.5:
            return self.close(tid, self.last_active)
        return []

    def close(self, tid: int, t: float) -> list[ActionEvent]:
        if self.active is None:
            return []
        ev = [ActionEvent(tid, "waving", "end", self.since, end=t, extra={"hand": self.active})]
        self.active = None
        return ev


class SquatRule:
    def __init__(self, cfg: ActionsConfig):
        self.cfg = cfg
        self.down_since: float | None = None
        self.count = 0
        self._min_angle = 180.0
        self._legs: deque[tuple[float, float]] = deque()  # (t, ankles below hips, px)
        self._min_leg = math.inf

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        if o.posture == "lying":
            self.down_since = None
            return []
        leg = o.leg_drop
        if math.isfinite(leg):
            self._legs.append((o.t, leg))
        while self._legs and self._legs[0][0] < o.t - 3.0:
            self._legs.popleft()
        ang, tilt = o.knee_angle, o.tilt
        if not math.isfinite(ang) or not (math.isfinite(tilt) and tilt <= self.cfg.squat_max_tilt_deg):
            return []  # a squat keeps the torso fairly upright; lying down or bending over is not one
        if self.down_since is None:
            if ang <= self.cfg.squat_down_angle:
                self.down_since, self._min_angle, self._min_leg = o.t, ang, leg if math.isfinite(leg) else math.inf
            return []
        self._min_angle = min(self._min_angle, ang)
        if math.isfinite(leg) and ang <= self.cfg.squat_down_angle:
            self._min_leg = min(self._min_leg, leg)  # only frames that show bent knees and low hips together
        if ang >= self.cfg.squat_up_angle:
            t0, self.down_since = self.down_since, None
            # The hips must really have come down (a knee misplaced by the detector bends no legs).
            # Reference: the median over the last 3 s (mostly standing between repetitions; robust to jumps).
            ref = float(np.median([v for _, v in self._legs])) if self._legs else math.nan
            if not (math.isfinite(ref) and self._min_leg <= self.cfg.squat_max_hip_height * ref):
                return []
            self.count += 1
            conf = _conf(o, [g.L_HIP, g.R_HIP, g.L_KNEE, g.R_KNEE, g.L_ANKLE, g.R_ANKLE])
            return [
                ActionEvent(
                    tid,
                    "squat",
                    "count",
                    t0,
                    end=o.t,
                    confidence=conf,
                    count=self.count,
                    extra={"min_knee_angle": round(self._min_angle, 1)},
                )
            ]
        return []


class TrackRules:
    """All enabled rule recognisers of one track."""

    def __init__(self, track_id: int, cfg: ActionsConfig):
        self.track_id = track_id
        self.cfg = cfg
        self.last_t = -math.inf
        self._sizes: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []  # the sizes of _sizes, sorted: the median without sorting every frame
        self.rules: dict[str, Rule] = {}
        makers: dict[str, Callable[[ActionsConfig], Rule]] = {
            "posture": PostureRule,
            "fall": FallRule,
            "hands_raised": HandsRaisedRule,
            "waving": WavingRule,
            "squat": SquatRule,
        }
        for name in cfg.rules:
            self.rules[name] = makers[name](cfg)

    def scale(self, t: float, size: float) -> float:
        """Add this frame's torso size (px, nan if unknown); the scale the rules use now."""
        self.last_t = t
        # The torso size of one frame jumps when PoseNet misplaces a hip or a shoulder; rules use the
        # median of the last second, which still follows a person walking towards the camera.
        srt = self._sorted
        if math.isfinite(size):
            self._sizes.append((t, size))
            bisect.insort(srt, size)
        while self._sizes and self._sizes[0][0] < t - 1.0:
            del srt[bisect.bisect_left(srt, self._sizes.popleft()[1])]
        n = len(srt)
        if not n:
            return float("nan")
        # np.median's arithmetic: the middle value, or the mean of the two middle ones.
        return srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2

    def observed(self, o: Observation) -> list[ActionEvent]:
        """Run the rules on this frame's observation (measured with :meth:`scale`'s value)."""
        events: list[ActionEvent] = []
        for rule in self.rules.values():
            events.extend(rule.update(self.track_id, o))
        return events

    def update(self, t: float, kp: np.ndarray, scores: np.ndarray) -> list[ActionEvent]:
        """One frame of this person alone (the engine measures a frame's people together instead)."""
        kp = np.asarray(kp, np.float32)
        scale = self.scale(t, float(g.torso_size(kp, scores >= self.cfg.min_part_score)))
        return self.observed(observe(t, kp, scores, self.cfg, scale))

    def close(self) -> list[ActionEvent]:
        """End every open start/end action (the track disappeared)."""
        events: list[ActionEvent] = []
        for rule in self.rules.values():
            if hasattr(rule, "close"):
                events.extend(rule.close(self.track_id, self.last_t))
        return events
