"""Frames from a JSON Lines recording (``FrameResult.to_dict()`` records, ``frame.schema.json``).

``edgepose serve --replay rec.jsonl`` publishes a recording as if it were live,
for testing dashboards and Home Assistant without a camera; the same records
are what ``edgepose run --jsonl`` writes and ``edgepose listen --jsonl`` records.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import SourceError
from ..types import ActionEvent, FrameResult, Pose

_RECORD_KEYS = {"v", "frame", "ts", "width", "height", "people", "events"}


def frame_from_record(rec: dict[str, Any]) -> FrameResult:
    """Inverse of :meth:`FrameResult.to_dict`."""
    events = [ActionEvent(**e) for e in rec.get("events", [])]
    extra = {k: v for k, v in rec.items() if k not in _RECORD_KEYS}
    return FrameResult(
        index=int(rec["frame"]),
        timestamp=float(rec["ts"]),
        poses=[Pose.from_dict(p) for p in rec.get("people", [])],
        width=int(rec["width"]),
        height=int(rec["height"]),
        events=events,
        extra=extra,
    )


def read_records(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SourceError(f"cannot read the recording {p}: {e.strerror or e}.", "pass a .jsonl file written by edgepose run --jsonl or edgepose listen --jsonl.") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not all(k in rec for k in ("frame", "ts", "width", "height")):
                raise KeyError("frame/ts/width/height")
        except (ValueError, KeyError) as e:
            raise SourceError(f"{p}:{n} is not a frame record ({e}).", "each line must be a FrameResult.to_dict() JSON object.") from None
        out.append(rec)
    if not out:
        raise SourceError(f"the recording {p} has no frames.", "record some with edgepose listen --jsonl or edgepose run --jsonl.")
    return out


def replay(path: str | Path, fps: float | None = None, loop: bool = False, live: bool = True) -> Iterator[FrameResult]:
    """Yield the recording's frames, paced at ``fps`` (None: as fast as consumed).

    ``live`` re-stamps frames (and their events) with the current time and keeps
    frame numbers increasing across loops, so a replay looks like a camera.
    """
    records = read_records(path)
    period = 1.0 / fps if fps else 0.0
    index = 0
    next_t = time.monotonic()
    while True:
        for rec in records:
            fr = frame_from_record(rec)
            if period:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_t = max(next_t + period, time.monotonic() - period)
            if live:
                shift = time.time() - fr.timestamp
                fr.timestamp += shift
                fr.index = index
                for e in fr.events:
                    e.start += shift
                    if e.end is not None:
                        e.end += shift
            index += 1
            yield fr
        if not loop:
            return
