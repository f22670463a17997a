"""The action engine as it was before it measured a frame's people in one batch: the reference.

``edgepose.actions.engine.ActionEngine`` must report exactly the events this
per-person implementation reports (``tests/test_actions_equivalence.py`` runs
both on the seed clip, dataset sequences and synthetic scenes), and
``benchmarks/actions_bench.py --stage`` times both in one process. Nothing
else uses it: the rules and the engine here are frozen copies of the code the
batched one replaced (commit 580fa96), not to be tuned.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from edgepose import geometry as g
from edgepose.actions.config import ActionsConfig
from edgepose.types import NUM_KEYPOINTS, ActionEvent, Pose

log = logging.getLogger(__name__)

FEATURES_PER_FRAME = 4 * NUM_KEYPOINTS + 4


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


def observe(
    t: float, kp: np.ndarray, scores: np.ndarray, cfg: ActionsConfig, scale: float | None = None
) -> Observation:
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
        for name, w, e, s in (
            ("left", g.L_WRIST, g.L_ELBOW, g.L_SHOULDER),
            ("right", g.R_WRIST, g.R_ELBOW, g.R_SHOULDER),
        ):
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


@dataclass
class _ModelState:
    """Sliding-window state of the classifier for one track."""

    ts: list[float] = field(default_factory=list)
    kps: list[np.ndarray] = field(default_factory=list)
    vis: list[np.ndarray] = field(default_factory=list)
    next_tick: float | None = None
    ticks: int = 0
    streak_class: str | None = None
    streak: int = 0
    misses: int = 0
    active: str | None = None
    active_since: float = 0.0
    active_conf: list[float] = field(default_factory=list)


class ReferenceActionEngine:
    """The per-person ``ActionEngine`` as it was before batching: same constructor and ``update``/``close``."""

    def __init__(self, config: ActionsConfig | None = None, classifier=None):
        self.config = config or ActionsConfig()
        self.rules: dict[int, TrackRules] = {}
        self.models: dict[int, _ModelState] = {}
        self.last_seen: dict[int, float] = {}
        self.classifier = classifier
        if self.classifier is None and self.config.model_path:
            from .classifier import ActionClassifier

            self.classifier = ActionClassifier(self.config.model_path, threads=self.config.model_threads)

    def update(self, tracked_poses: list[Pose], timestamp: float) -> list[ActionEvent]:
        cfg = self.config
        t = float(timestamp)
        events: list[ActionEvent] = []
        if not cfg.enabled:
            return events
        for pose in tracked_poses:
            tid = pose.track_id
            if tid is None:
                continue
            self.last_seen[tid] = t
            rules = self.rules.get(tid)
            if rules is None:
                rules = self.rules[tid] = TrackRules(tid, cfg)
            events.extend(rules.update(t, pose.keypoints, pose.scores))
            if self.classifier is not None:
                events.extend(self._classify(tid, t, pose))
        events.extend(self._forget(t))
        return events

    def close(self) -> list[ActionEvent]:
        """End every open action (end of the source)."""
        return self._forget(float("inf"))

    # ------------------------------------------------------------------ internals

    def _forget(self, t: float) -> list[ActionEvent]:
        events: list[ActionEvent] = []
        for tid, seen in list(self.last_seen.items()):
            if t - seen <= self.config.forget_after_s:
                continue
            if tid in self.rules:
                events.extend(self.rules.pop(tid).close())
            st = self.models.pop(tid, None)
            if st is not None and st.active is not None:
                events.append(self._end_model_action(tid, st, seen))
            del self.last_seen[tid]
        return events

    def _end_model_action(self, tid: int, st: _ModelState, t: float) -> ActionEvent:
        ev = ActionEvent(
            tid,
            st.active or "",
            "end",
            st.active_since,
            end=t,
            confidence=float(np.mean(st.active_conf)) if st.active_conf else 0.0,
            extra={"source": "model"},
        )
        st.active, st.active_conf = None, []
        return ev

    def _classify(self, tid: int, t: float, pose: Pose) -> list[ActionEvent]:
        cfg, clf = self.config, self.classifier
        st = self.models.get(tid)
        if st is None:
            st = self.models[tid] = _ModelState()
        span = (clf.window - 1) / clf.fps
        st.ts.append(t)
        st.kps.append(pose.keypoints.copy())
        st.vis.append(pose.scores >= cfg.min_part_score)
        # Keep a little more than one window of history.
        while len(st.ts) > 2 and st.ts[1] < t - span - 1.0 / clf.fps:
            st.ts.pop(0), st.kps.pop(0), st.vis.pop(0)
        if st.next_tick is None:
            st.next_tick = st.ts[0] + span
        if t < st.next_tick:
            return []
        # One tick per 1/fps of media time; after a stall, jump ahead rather than replay old ticks.
        st.next_tick = max(st.next_tick + 1.0 / clf.fps, t + 0.5 / clf.fps)
        st.ticks += 1
        if (st.ticks - 1) % cfg.model_stride:
            return []
        ticks = t - span + np.arange(clf.window) / clf.fps
        ts = np.asarray(st.ts)
        idx = np.searchsorted(ts, ticks + 1e-6, side="right") - 1
        if idx[0] < 0:
            return []
        kp = np.stack(st.kps)[idx]
        vis = np.stack(st.vis)[idx]
        probs = _predict(clf, kp, vis)
        best = int(np.argmax(probs))
        name, conf = clf.classes[best], float(probs[best])
        winner = name if conf >= cfg.model_min_confidence and name not in cfg.model_ignore else None
        events: list[ActionEvent] = []
        if winner is not None and winner == st.streak_class:
            st.streak += 1
        else:
            st.streak_class, st.streak = winner, 1
        if winner is not None and winner == st.active:
            st.misses = 0
            st.active_conf.append(conf)
        elif st.active is not None:
            st.misses += 1
            if st.misses >= cfg.model_smoothing or (winner is not None and st.streak >= cfg.model_smoothing):
                events.append(self._end_model_action(tid, st, t))
        if winner is not None and st.active is None and st.streak >= cfg.model_smoothing:
            st.active, st.active_since, st.active_conf, st.misses = winner, t, [conf], 0
            events.append(ActionEvent(tid, winner, "start", t, confidence=conf, extra={"source": "model"}))
        return events


# ---------------------------------------------------------------------- features (edgepose/actions/features.py then)


def _fill_time(a: np.ndarray) -> np.ndarray:
    """Replace nan entries along axis 1 (time) of ``(N, T, ..., 2)`` by the nearest earlier, else later, valid value; 0 if none."""
    n, t = a.shape[:2]
    valid = ~np.isnan(a).any(axis=-1)  # (N, T, ...)
    tix = np.arange(t).reshape((1, t) + (1,) * (valid.ndim - 2))
    last = np.maximum.accumulate(np.where(valid, tix, -1), axis=1)
    # First valid index per series, for the leading gap.
    first = np.where(valid.any(axis=1, keepdims=True), np.argmax(valid, axis=1)[:, None], 0)
    idx = np.where(last < 0, first, last)
    out = np.take_along_axis(a, idx[..., None], axis=1)
    return np.where(np.isnan(out), 0.0, out).astype(a.dtype)


def window_scale(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Median torso size over each window's frames where it is defined: ``(N,)``, ``nan`` if none."""
    sizes = np.asarray(g.torso_size(keypoints, visible), np.float32).reshape(len(keypoints), -1)  # (N, T)
    ok = np.isfinite(sizes)
    srt = np.sort(np.where(ok, sizes, np.inf), axis=1)  # nan-free median (np.nanmedian is slow on small arrays)
    cnt = ok.sum(axis=1)
    lo = np.take_along_axis(srt, np.maximum((cnt - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(srt, np.maximum(cnt // 2, 0)[:, None], axis=1)[:, 0]
    return np.where(cnt > 0, (lo + hi) * 0.5, np.nan).astype(np.float32)


def batch_features(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``(N, T, FEATURES_PER_FRAME)`` float32 features of ``(N, T, 17, 2)`` windows."""
    kp = np.asarray(keypoints, np.float32)
    vis = np.asarray(visible, bool)
    n, t = kp.shape[:2]
    if n == 0:
        return np.zeros((0, t, FEATURES_PER_FRAME), np.float32)
    scale = window_scale(kp, vis)  # (N,)
    bad = ~np.isfinite(scale)
    scale = np.where(bad, 1.0, scale)[:, None, None]
    centres = _fill_time(g.body_centre(kp, vis))  # (N, T, 2)
    pos = (kp - centres[:, :, None, :]) / scale[..., None]
    pos = np.where(vis[..., None], pos, np.nan)
    pos = _fill_time(pos)  # each joint's gaps along time
    vel = np.zeros_like(pos)
    vel[:, 1:] = pos[:, 1:] - pos[:, :-1]
    c_rel = (centres - centres[:, -1:]) / scale
    c_vel = np.zeros_like(c_rel)
    c_vel[:, 1:] = c_rel[:, 1:] - c_rel[:, :-1]
    feats = np.concatenate([pos.reshape(n, t, -1), vel.reshape(n, t, -1), c_rel, c_vel], axis=2).astype(np.float32)
    feats[bad] = 0.0  # no usable scale: nothing position-invariant to say
    return feats


def _predict(clf, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``ActionClassifier.predict`` then: features of one window, one invoke, softmax."""
    x = clf.standardise(batch_features(np.asarray(keypoints)[None], np.asarray(visible)[None]))
    logits = clf._run(x)
    e = np.exp(logits - logits.max())
    return e / e.sum()
