"""Keypoints as JSON Lines: one record per frame (:meth:`FrameResult.to_dict`'s values).

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
from ..mqtt import payloads
from ..types import FrameResult


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
                raise EdgeposeError(
                    f"cannot write {p}: folder {p.parent} does not exist.",
                    "create the folder or choose another --jsonl path.",
                )
            try:
                self._fh = p.open("a" if append else "w", encoding="utf-8")
            except OSError as e:
                raise EdgeposeError(f"cannot write {p}: {e.strerror}.", "choose a writable --jsonl path.") from None
            self._own = True
        self.count = 0

    def write(self, result: FrameResult) -> None:
        # The MQTT payload's writer: one % format per person, not json.dumps of to_dict.
        self._write_line(payloads.frame_json(result).decode("ascii"))

    def write_record(self, record: dict[str, Any], *, flush: bool = False) -> None:
        """One frame record (``frame.schema.json``) that is already a dict, e.g. received over MQTT."""
        self._write_line(json.dumps(record, separators=(",", ":")), flush)

    def _write_line(self, line: str, flush: bool = False) -> None:
        self._fh.write(line + "\n")
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


def read_frame_dicts(
    path: str | Path,
    *,
    error: type[EdgeposeError] = EdgeposeError,
    missing_fix: str = "record one with `edgepose run --jsonl FILE`.",
    bad_fix: str = "pass a file written by `edgepose run --jsonl` or `edgepose listen --jsonl`.",
) -> Iterator[dict[str, Any]]:
    """The frame records of a JSONL recording as dicts (``-``: standard input); the one parser of recordings.

    ``error`` names the file and line of a record that does not parse or lacks a frame's keys.
    """
    p = Path(path)
    if str(path) == "-":
        fh: IO[str] = sys.stdin
    else:
        try:
            fh = p.open(encoding="utf-8")
        except FileNotFoundError:
            raise error(f"cannot read the recording {p}: it does not exist.", missing_fix) from None
        except OSError as e:
            raise error(f"cannot read the recording {p}: {e.strerror or e}.", missing_fix) from None
    with fh if fh is not sys.stdin else _nullcontext():
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise error(f"{p}:{ln} is not a frame record (not JSON: {getattr(e, 'msg', e)}).", bad_fix) from None
            missing = (
                [k for k in ("frame", "ts", "width", "height") if k not in rec]
                if isinstance(rec, dict)
                else ["a JSON object"]
            )
            if missing:
                raise error(f"{p}:{ln} is not a frame record (it lacks {', '.join(missing)}).", bad_fix) from None
            yield rec


def read_frame_records(path: str | Path, **kw: Any) -> Iterator[FrameResult]:
    """The frames of a JSONL recording (:meth:`FrameResult.from_dict` of each record); ``kw`` as :func:`read_frame_dicts`."""
    error = kw.get("error", EdgeposeError)
    for rec in read_frame_dicts(path, **kw):
        try:
            yield FrameResult.from_dict(rec)
        except (ValueError, KeyError, TypeError) as e:
            raise error(
                f"{path}: frame {rec.get('frame')} is not a frame record (a bad value: {e}).",
                kw.get("bad_fix", "pass a file written by `edgepose run --jsonl` or `edgepose listen --jsonl`."),
            ) from None
