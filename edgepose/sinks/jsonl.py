"""Keypoints as JSON Lines: one :meth:`FrameResult.to_dict` record per frame.

The record is documented in the README and by ``edgepose/schemas/frame.schema.json``;
``edgepose listen`` writes the same format and ``edgepose actions train`` reads it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from ..errors import EdgeposeError
from ..types import FrameResult


class JsonlSink:
    """Writes one line per frame to a file (``-`` for standard output)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path == "-":
            self._fh: IO[str] = sys.stdout
            self._own = False
        else:
            p = Path(path)
            if not p.parent.exists():
                raise EdgeposeError(f"cannot write {p}: folder {p.parent} does not exist.", "create the folder or choose another --jsonl path.")
            try:
                self._fh = p.open("w", encoding="utf-8")
            except OSError as e:
                raise EdgeposeError(f"cannot write {p}: {e.strerror}.", "choose a writable --jsonl path.") from None
            self._own = True
        self.count = 0

    def write(self, result: FrameResult) -> None:
        self._fh.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        self.count += 1
        if not self._own:
            self._fh.flush()  # a pipe reader sees every frame as it happens

    def close(self) -> None:
        if self._own and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlSink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
