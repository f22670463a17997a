"""Frame records from a device's MQTT ``poses`` and ``events`` messages, written as JSON Lines.

What ``edgepose listen --jsonl`` records: the same frame records ``edgepose run --jsonl``
writes (``frame.schema.json``), through the same writer (:class:`~edgepose.sinks.jsonl.JsonlSink`).
"""

from __future__ import annotations

import collections
from typing import Any

from ..mqtt.payloads import frame_record
from .jsonl import JsonlSink

#: Events held for frames not received yet (a real one is a frame or two early; a bogus frame number is not).
MAX_EARLY = 10_000
#: Events on one frame record (a real frame has one per track and action at most).
MAX_EVENTS_PER_FRAME = 1000
#: (device, seq) pairs remembered to drop re-deliveries (which come within seconds).
SEQS_KEPT = 100_000


class MqttRecorder:
    """Turns ``poses`` and ``events`` payloads into frame records.

    Events travel on their own topic (QoS 1) and can arrive a little after the
    poses of their frame, so the last :attr:`hold` frames stay in memory to
    receive them before they are written. An event goes to the record of its
    frame, or the next recorded one when poses are rate-limited; an event
    delivered twice (at-least-once) is dropped by its ``(device, seq)``.
    """

    def __init__(self, sink: JsonlSink, hold: int = 30):
        self.sink = sink
        self.hold = hold
        self.buffer: list[dict[str, Any]] = []  # frame records not yet written, frames increasing
        self.early: list[dict[str, Any]] = []  # events for frames not received yet
        self.seen: set[tuple[str, int]] = set()
        self._seen_order: collections.deque[tuple[str, int]] = collections.deque()
        #: Events dropped: early ones beyond MAX_EARLY (oldest first), and beyond MAX_EVENTS_PER_FRAME on one frame.
        self.dropped_early = 0

    @property
    def written(self) -> int:
        return self.sink.count

    def _attach(self, rec: dict[str, Any], event: dict[str, Any]) -> None:
        events = rec.setdefault("_events", [])
        if len(events) >= MAX_EVENTS_PER_FRAME:
            self.dropped_early += 1
            return
        events.append(event)

    def add_event(self, payload: dict[str, Any]) -> None:
        key = (payload.get("device", ""), int(payload["seq"]))
        if key in self.seen:
            return
        self.seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > SEQS_KEPT:
            self.seen.discard(self._seen_order.popleft())
        f = payload.get("frame")
        target = next((r for r in self.buffer if f is None or r["frame"] >= f), None)
        if target is None:
            self.early.append(payload)
            if len(self.early) > MAX_EARLY:
                self.early.pop(0)
                self.dropped_early += 1
        else:
            self._attach(target, payload)  # its frame, the next recorded one, or (too late) the oldest held

    def add_poses(self, payload: dict[str, Any]) -> None:
        rec = frame_record(payload)
        keep = []
        for e in self.early:
            if e.get("frame") is None or e["frame"] <= rec["frame"]:
                self._attach(rec, e)
            else:
                keep.append(e)
        self.early = keep
        self.buffer.append(rec)
        while len(self.buffer) > self.hold:
            self._write(self.buffer.pop(0))

    def _write(self, rec: dict[str, Any]) -> None:
        events = rec.pop("_events", [])
        if events:
            rec["events"] = [e["event"] for e in sorted(events, key=lambda e: e["seq"])]
        # Flushed per record: a recording stopped by SIGKILL keeps every frame it wrote.
        self.sink.write_record(rec, flush=True)

    def close(self) -> None:
        """Write what is held (events of frames that never came go with the last frame) and close the file."""
        if self.buffer and self.early:
            for e in self.early:
                self._attach(self.buffer[-1], e)
            self.early = []
        while self.buffer:
            self._write(self.buffer.pop(0))
        self.sink.close()
