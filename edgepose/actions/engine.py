"""Per-track action recognition for the runtime pipeline: rules and, optionally, the learned classifier."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..types import ActionEvent, Pose
from .config import ActionsConfig
from .rules import TrackRules

log = logging.getLogger(__name__)


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


class ActionEngine:
    """``update(tracked_poses, timestamp) -> events``; see edgepose/actions/README.md for the rules and the classifier."""

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
        ev = ActionEvent(tid, st.active or "", "end", st.active_since, end=t,
                         confidence=float(np.mean(st.active_conf)) if st.active_conf else 0.0, extra={"source": "model"})
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
        probs = clf.predict(kp, vis)
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
