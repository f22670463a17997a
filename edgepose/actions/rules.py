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

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .. import geometry as g
from ..types import ActionEvent
from .config import ActionsConfig

POSTURES = ("standing", "sitting", "lying")


class Rule(Protocol):
    """One action rule for one track; rules with start/end actions also have ``close(tid, t)``."""

    def update(self, tid: int, o: Observation) -> list[ActionEvent]: ...


@dataclass
class Observation:
    """One frame of one person, measured for the rules."""

    t: float
    kp: np.ndarray
    vis: np.ndarray
    scores: np.ndarray
    scale: float  # torso size, px (nan if unknown)
    centre_y: float  # body centre, px
    posture: str | None  # this frame's posture, before debouncing


def frame_posture(kp: np.ndarray, vis: np.ndarray, scale: float, cfg: ActionsConfig) -> str | None:
    """``standing`` / ``sitting`` / ``lying`` for one frame, ``None`` if the visible parts do not say."""
    if not math.isfinite(scale) or int(vis.sum()) < 5:
        return None
    tilt = g.torso_tilt_deg(kp, vis)
    height = (kp[vis, 1].max() - kp[vis, 1].min()) / scale
    if math.isfinite(tilt) and tilt >= cfg.lying_min_tilt_deg and height <= cfg.lying_max_height:
        return "lying"
    if not math.isfinite(tilt) or tilt > 35.0:
        return None  # bent over or unclear: no posture claim
    hip = g.hip_centre(kp, vis)
    knees = [kp[i, 1] for i in (g.L_KNEE, g.R_KNEE) if vis[i]]
    ankles = [kp[i, 1] for i in (g.L_ANKLE, g.R_ANKLE) if vis[i]]
    if np.isnan(hip[0]) or not knees:
        return None
    thigh_drop = (float(np.mean(knees)) - float(hip[1])) / scale
    if thigh_drop <= cfg.sitting_max_thigh_drop:
        return "sitting"
    if ankles and (float(np.mean(ankles)) - float(hip[1])) / scale >= cfg.standing_min_leg_drop:
        return "standing"
    return None


def observe(t: float, kp: np.ndarray, scores: np.ndarray, cfg: ActionsConfig, scale: float | None = None) -> Observation:
    """Measure one frame; ``scale`` overrides the frame's own torso size (e.g. a running median)."""
    vis = scores >= cfg.min_part_score
    if scale is None:
        scale = float(g.torso_size(kp, vis))
    c = g.body_centre(kp, vis)
    return Observation(t, kp, vis, scores, float(scale), float(c[1]), frame_posture(kp, vis, float(scale), cfg))


def _conf(obs: Observation, parts: list[int]) -> float:
    """Confidence of a rule = mean score of the parts it looked at."""
    return float(np.mean(obs.scores[parts])) if parts else 0.0


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
        self._conf.append(_conf(o, [g.L_HIP, g.R_HIP, g.L_KNEE, g.R_KNEE, g.L_SHOULDER, g.R_SHOULDER]))
        if self._cand == self.state or o.t - self._cand_since < self.cfg.posture_min_s:
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
        if math.isfinite(o.centre_y) and math.isfinite(o.scale):
            self.hist.append((o.t, o.centre_y, o.scale))
        keep = max(cfg.fall_max_drop_s, 2.0) + cfg.fall_settle_s + cfg.fall_persist_s
        while self.hist and self.hist[0][0] < o.t - keep:
            self.hist.popleft()
        if len(self.hist) >= 2 and not self.fallen:
            # Scale from before the drop (the torso foreshortens while falling): the largest recent size.
            ref = max(s for _, _, s in self.hist)
            recent = [(t, y) for t, y, _ in self.hist if t >= o.t - cfg.fall_max_drop_s]
            y_top = min(y for _, y in recent)
            # The drop starts when the body last left the top (noise must not date it earlier).
            t_top = max(t for t, y in recent if y <= y_top + 0.1 * ref)
            drop = (self.hist[-1][1] - y_top) / ref
            if drop >= cfg.fall_min_drop and (self.drop is None or drop > self.drop[2]):
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

    def raised(self, o: Observation) -> list[str]:
        if not math.isfinite(o.scale):
            return []
        out = []
        for name, w, s in (("left", g.L_WRIST, g.L_SHOULDER), ("right", g.R_WRIST, g.R_SHOULDER)):
            if o.vis[w] and o.vis[s] and (o.kp[s, 1] - o.kp[w, 1]) / o.scale >= self.cfg.hands_raised_min_height:
                out.append(name)
        return out

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        hands = self.raised(o)
        now = len(hands) >= self.cfg.hands_raised_min_hands
        if now == self.active:
            self._flip_since = None
            if now:
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
            return [ActionEvent(tid, "hands_raised", "start", t, confidence=_conf(o, [g.L_WRIST, g.R_WRIST]), extra={"hands": hands})]
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
        for name, w, e, s in (("left", g.L_WRIST, g.L_ELBOW, g.L_SHOULDER), ("right", g.R_WRIST, g.R_ELBOW, g.R_SHOULDER)):
            if not (o.vis[w] and o.vis[e] and o.vis[s]):
                continue
            # A wave is a forearm pointing up: wrist above the elbow and at least at shoulder height.
            if o.kp[w, 1] < o.kp[e, 1] and o.kp[w, 1] <= o.kp[s, 1]:
                x = float(o.kp[w, 0] - o.kp[s, 0]) / o.scale
                prev = self.last_x.get(name)
                self.last_x[name] = (o.t, x)
                # A wrist "moving" faster than a hand can is PoseNet jumping to another hand: skip it.
                if prev is not None and o.t > prev[0] and abs(x - prev[1]) / (o.t - prev[0]) > cfg.wave_max_speed:
                    continue
                self.up_seen[name] = o.t
                self.counters[name].update(o.t, x)
            if o.t - self.up_seen[name] < 0.5 and self.counters[name].recent(o.t - cfg.wave_window_s) >= cfg.wave_min_swings:
                waving = name
        if waving and self.active is None:
            self.active, self.since = waving, o.t
            self.last_active = o.t
            return [ActionEvent(tid, "waving", "start", o.t, confidence=_conf(o, [g.L_WRIST, g.R_WRIST, g.L_ELBOW, g.R_ELBOW]), extra={"hand": waving})]
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

    @staticmethod
    def knee_angle(o: Observation) -> float:
        angles = [
            g.angle_deg(o.kp[h], o.kp[k], o.kp[a])
            for h, k, a in ((g.L_HIP, g.L_KNEE, g.L_ANKLE), (g.R_HIP, g.R_KNEE, g.R_ANKLE))
            if o.vis[h] and o.vis[k] and o.vis[a]
        ]
        angles = [x for x in angles if math.isfinite(x)]
        return float(np.mean(angles)) if angles else float("nan")

    @staticmethod
    def leg_drop(o: Observation) -> float:
        """Ankles below hips in pixels (compared only with the same person's last 3 s: a ratio, scale-free)."""
        hip = g.hip_centre(o.kp, o.vis)
        ankles = [o.kp[i, 1] for i in (g.L_ANKLE, g.R_ANKLE) if o.vis[i]]
        if np.isnan(hip[0]) or not ankles:
            return math.nan
        return float(np.mean(ankles)) - float(hip[1])

    def update(self, tid: int, o: Observation) -> list[ActionEvent]:
        if o.posture == "lying":
            self.down_since = None
            return []
        leg = self.leg_drop(o)
        if math.isfinite(leg):
            self._legs.append((o.t, leg))
        while self._legs and self._legs[0][0] < o.t - 3.0:
            self._legs.popleft()
        ang = self.knee_angle(o)
        tilt = g.torso_tilt_deg(o.kp, o.vis)
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
            return [ActionEvent(tid, "squat", "count", t0, end=o.t, confidence=conf, count=self.count,
                                extra={"min_knee_angle": round(self._min_angle, 1)})]
        return []


class TrackRules:
    """All enabled rule recognisers of one track."""

    def __init__(self, track_id: int, cfg: ActionsConfig):
        self.track_id = track_id
        self.cfg = cfg
        self.last_t = -math.inf
        self._sizes: deque[tuple[float, float]] = deque()
        self.rules: dict[str, Rule] = {}
        makers: dict[str, Callable[[ActionsConfig], Rule]] = {"posture": PostureRule, "fall": FallRule, "hands_raised": HandsRaisedRule, "waving": WavingRule, "squat": SquatRule}
        for name in cfg.rules:
            self.rules[name] = makers[name](cfg)

    def update(self, t: float, kp: np.ndarray, scores: np.ndarray) -> list[ActionEvent]:
        self.last_t = t
        # The torso size of one frame jumps when PoseNet misplaces a hip or a shoulder; rules use the
        # median of the last second, which still follows a person walking towards the camera.
        size = float(g.torso_size(kp, scores >= self.cfg.min_part_score))
        if math.isfinite(size):
            self._sizes.append((t, size))
        while self._sizes and self._sizes[0][0] < t - 1.0:
            self._sizes.popleft()
        scale = float(np.median([s for _, s in self._sizes])) if self._sizes else float("nan")
        o = observe(t, kp, scores, self.cfg, scale)
        events: list[ActionEvent] = []
        for rule in self.rules.values():
            events.extend(rule.update(self.track_id, o))
        return events

    def close(self) -> list[ActionEvent]:
        """End every open start/end action (the track disappeared)."""
        events: list[ActionEvent] = []
        for rule in self.rules.values():
            if hasattr(rule, "close"):
                events.extend(rule.close(self.track_id, self.last_t))
        return events
