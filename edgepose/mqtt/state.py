"""The ``state`` topic's summary: people in view, a recent fall, the ongoing actions.

Home Assistant's entities read the retained ``state`` message, so it goes out when the summary changes,
at most once every ``min_interval`` seconds (people counts flicker from frame to frame).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from ..types import ActionEvent, FrameResult

#: Action names that set the fall binary sensor.
FALL_ACTIONS = frozenset({"fall", "fallen", "falling", "fall_down"})
#: Seconds between two ``state`` messages at most.
STATE_MIN_INTERVAL = 1.0

StateKey = tuple[int, bool, tuple[str, ...]]


class StateSummary:
    """Folds frames and action events into ``(people, fall, actions)``, and says when a message is due."""

    def __init__(
        self, fall_hold: float, min_interval: float = STATE_MIN_INTERVAL, clock: Callable[[], float] = time.monotonic
    ):
        self.fall_hold = fall_hold
        self.min_interval = min_interval
        self.clock = clock
        self.people = 0
        self._ongoing: dict[int, set[str]] = {}
        self._fall_until = 0.0
        self._sent: StateKey | None = None
        self._sent_at = 0.0

    def note_events(self, events: Iterable[ActionEvent]) -> None:
        now = self.clock()
        for e in events:
            if e.action.lower() in FALL_ACTIONS:
                if e.kind in ("start", "instant"):
                    self._fall_until = now + self.fall_hold
                elif e.kind == "end":
                    self._fall_until = 0.0
                continue
            if e.kind == "start":
                self._ongoing.setdefault(e.track_id, set()).add(e.action)
            elif e.kind == "end":
                self._ongoing.get(e.track_id, set()).discard(e.action)

    def note_frame(self, result: FrameResult) -> None:
        self.people = len(result.poses)
        if self._ongoing:
            tracked = {p.track_id for p in result.poses if p.track_id is not None}
            if tracked or not result.poses:
                # A person who left takes their ongoing actions along.
                for tid in [t for t in self._ongoing if t not in tracked]:
                    del self._ongoing[tid]

    def key(self) -> StateKey:
        actions = tuple(sorted({a for acts in self._ongoing.values() for a in acts})) if self._ongoing else ()
        return (self.people, self.clock() < self._fall_until, actions)

    def due(self, force: bool = False) -> StateKey | None:
        """The summary to publish now, or None (unchanged, or changed too soon); a returned one counts as sent.

        Called every frame: it compares a cheap key and builds nothing when nothing changed."""
        key = self.key()
        if not force and key == self._sent:
            return None
        now = self.clock()
        if not force and now - self._sent_at < self.min_interval:
            return None
        self._sent, self._sent_at = key, now
        return key
