"""Per-track action recognition for the runtime pipeline: rules and, optionally, the learned classifier.

A frame's people are measured together: one set of numpy operations over the
``(N, 17, 2)`` keypoints of everyone, then each track's small state machines run on
plain floats, and every window due for the classifier in this frame has its
features built in one call. The events are exactly those of the per-person
implementation this replaced (``tests/actions_reference.py``, kept for the
tests and the benchmark), in the same order.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import geometry as g
from ..types import NUM_KEYPOINTS, ActionEvent, Pose
from .config import ActionsConfig
from .rules import TrackRules, measure

log = logging.getLogger(__name__)


@dataclass
class _ModelState:
    """Sliding-window state of the classifier for one track."""

    ts: deque[float] = field(default_factory=deque)
    # Per frame: keypoints, visibility, torso size, body centre (the last two measured for the rules anyway).
    frames: deque[tuple[np.ndarray, np.ndarray, np.float32, np.ndarray]] = field(default_factory=deque)
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
        self._offsets: np.ndarray | None = None
        if self.classifier is not None:
            self._offsets = np.arange(self.classifier.window) / self.classifier.fps

    def update(self, tracked_poses: list[Pose], timestamp: float) -> list[ActionEvent]:
        cfg = self.config
        t = float(timestamp)
        events: list[ActionEvent] = []
        if not cfg.enabled:
            return events
        poses = [p for p in tracked_poses if p.track_id is not None]
        if poses:
            kp = np.array([p.keypoints for p in poses], np.float32).reshape(-1, NUM_KEYPOINTS, 2)
            scores = np.array([p.scores for p in poses], np.float32).reshape(-1, NUM_KEYPOINTS)
            vis = scores >= cfg.min_part_score
            body = g.body_measures(kp, vis)  # neck, hips, torso size, centre: for the rules and the windows
            per_pose = self._rules(t, poses, kp, scores, vis, body)
            if self.classifier is not None:
                for evs, more in zip(per_pose, self._classify(t, poses, kp, vis, body)):
                    evs.extend(more)
            for evs in per_pose:
                events.extend(evs)
        events.extend(self._forget(t))
        return events

    def close(self) -> list[ActionEvent]:
        """End every open action (end of the source)."""
        return self._forget(float("inf"))

    # ------------------------------------------------------------------ internals

    def _rules(
        self, t: float, poses: list[Pose], kp: np.ndarray, scores: np.ndarray, vis: np.ndarray, body
    ) -> list[list[ActionEvent]]:
        """Each pose's rule events (the rules of a track first see its scale, then its observation)."""
        cfg = self.config
        tracks = []
        for pose in poses:
            tid = pose.track_id
            assert tid is not None
            self.last_seen[tid] = t
            rules = self.rules.get(tid)
            if rules is None:
                rules = self.rules[tid] = TrackRules(tid, cfg)
            tracks.append(rules)
        if not cfg.rules:
            for rules in tracks:
                rules.last_t = t
            return [[] for _ in poses]
        scales = [rules.scale(t, size) for rules, size in zip(tracks, body[2].tolist())]
        return [rules.observed(o) for rules, o in zip(tracks, measure(t, kp, scores, vis, scales, cfg, body))]

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

    def _classify(self, t: float, poses: list[Pose], kp: np.ndarray, vis: np.ndarray, body) -> list[list[ActionEvent]]:
        """Each pose's model events: the windows due now are gathered first, then classified in one batch."""
        clf = self.classifier
        assert clf is not None and self._offsets is not None
        # One copy of the frame (the decoder may reuse its arrays); the histories keep views of its rows.
        kp = kp.copy()
        sizes, centres = body[2], body[3]
        due: list[tuple[int, int, _ModelState]] = []
        windows: list[list] = []
        for i, pose in enumerate(poses):
            tid = pose.track_id
            assert tid is not None
            st = self.models.get(tid)
            if st is None:
                st = self.models[tid] = _ModelState()
            rows = self._window(st, t, (kp[i], vis[i], sizes[i], centres[i]))
            if rows is not None:
                due.append((i, tid, st))
                windows.append(rows)
        out: list[list[ActionEvent]] = [[] for _ in poses]
        if due:
            w_kp, w_vis, w_size, w_centre = (np.array([[f[k] for f in rows] for rows in windows]) for k in range(4))
            probs = clf.predict_windows(w_kp, w_vis, w_size, w_centre)
            for (i, tid, st), p in zip(due, probs):
                out[i] = self._decide(tid, st, t, p)
        return out

    def _window(self, st: _ModelState, t: float, frame: tuple) -> list | None:
        """Add this frame to the track's history; the window's frames to classify now, if one is due."""
        clf, cfg = self.classifier, self.config
        assert clf is not None and self._offsets is not None
        span = (clf.window - 1) / clf.fps
        st.ts.append(t)
        st.frames.append(frame)
        # Keep a little more than one window of history.
        while len(st.ts) > 2 and st.ts[1] < t - span - 1.0 / clf.fps:
            st.ts.popleft(), st.frames.popleft()
        if st.next_tick is None:
            st.next_tick = st.ts[0] + span
        if t < st.next_tick:
            return None
        # One tick per 1/fps of media time; after a stall, jump ahead rather than replay old ticks.
        st.next_tick = max(st.next_tick + 1.0 / clf.fps, t + 0.5 / clf.fps)
        st.ticks += 1
        if (st.ticks - 1) % cfg.model_stride:
            return None
        ticks = t - span + self._offsets
        idx = np.searchsorted(np.fromiter(st.ts, float, len(st.ts)), ticks + 1e-6, side="right") - 1
        if idx[0] < 0:
            return None
        return [st.frames[j] for j in idx.tolist()]

    def _decide(self, tid: int, st: _ModelState, t: float, probs: np.ndarray) -> list[ActionEvent]:
        """Turn one classification of a track into start/end events (a class must win ``model_smoothing`` in a row)."""
        cfg, clf = self.config, self.classifier
        assert clf is not None
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
