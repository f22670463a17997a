"""Keypoints as JSON Lines: one :meth:`FrameResult.to_dict` record per frame.

The record is documented in the README and by ``edgepose/schemas/frame.schema.json``;
``edgepose listen`` writes the same format and ``edgepose actions train`` reads it.
"""
from __future__ import annotations

import json
import sys
from contextlib import nullcontext as _nullcontext
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import EdgeposeError
from ..types import FrameResult, Pose


class JsonlSink:
    """Writes one line per frame to a file (``-`` for standard output)."""

    def __init__(self, path: str | Path, *, append: bool = False):
        self.path = str(path)
        if self.path == "-":
            self._fh: IO[str] = sys.stdout
            self._own = False
        else:
            p = Path(path)
            if not p.parent.exists():
                raise EdgeposeError(f"cannot write {p}: folder {p.parent} does not exist.", "create the folder or choose another --jsonl path.")
            try:
                self._fh = p.open("a" if append else "w", encoding="utf-8")
            except OSError as e:
                raise EdgeposeError(f"cannot write {p}: {e.strerror}.", "choose a writable --jsonl path.") from None
            self._own = True
        self.count = 0

    def write(self, result: FrameResult) -> None:
        self.write_record(result.to_dict())

    def write_record(self, record: dict[str, Any], *, flush: bool = False) -> None:
        """One frame record (``frame.schema.json``) that is already a dict, e.g. received over MQTT."""
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1
        if flush or not self._own:
            self._fh.flush()  # a pipe reader sees every frame as it happens

    def close(self) -> None:
        if self._own and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frame_records(
    path: str | Path,
    *,
    error: type[EdgeposeError] = EdgeposeError,
    missing_fix: str = "record one with `edgepose run --jsonl FILE`.",
    bad_fix: str = "pass a file written by `edgepose run --jsonl` or `edgepose listen --jsonl`.",
) -> Iterator[tuple[float, list[Pose]]]:
    """``(timestamp, poses)`` per frame record of a JSONL recording (``-``: standard input).

    ``error`` names the file and line of a record that does not parse.
    """
    p = Path(path)
    if str(path) == "-":
        fh: IO[str] = sys.stdin
    else:
        try:
            fh = p.open(encoding="utf-8")
        except FileNotFoundError:
            raise error(f"recording {p} does not exist.", missing_fix) from None
    with fh if fh is not sys.stdin else _nullcontext():
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                ts = float(rec["ts"])
                poses = [Pose.from_dict(d) for d in rec.get("people", [])]
            except (ValueError, KeyError, TypeError) as e:
                raise error(f"{p}:{ln} is not an edgepose frame record ({type(e).__name__}: {e}).", bad_fix) from None
            yield ts, poses
