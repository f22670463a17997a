"""Frames from a JSON Lines recording (``FrameResult.to_dict()`` records, ``frame.schema.json``).

``edgepose serve --replay rec.jsonl`` publishes a recording as if it were live,
for testing dashboards and Home Assistant without a camera; the same records
are what ``edgepose run --jsonl`` writes and ``edgepose listen --jsonl`` records.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import SourceError
from ..sinks.jsonl import read_frame_dicts
from ..types import FrameResult


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every frame record of a recording (through the one JSONL reader); an empty recording is an error."""
    out = list(
        read_frame_dicts(
            path,
            error=SourceError,
            missing_fix="pass a .jsonl file written by edgepose run --jsonl or edgepose listen --jsonl.",
            bad_fix="each line must be a FrameResult.to_dict() JSON object.",
        )
    )
    if not out:
        raise SourceError(
            f"the recording {path} has no frames.", "record some with edgepose listen --jsonl or edgepose run --jsonl."
        )
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
            fr = FrameResult.from_dict(rec)
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
