"""Durable event outbox: MQTT's store-and-forward queue, an SQLite file that an event leaves only once the broker acknowledged it.

Events are written (and fsynced: ``synchronous=FULL``, since a Pi loses power
rather than shutting down) before they are handed to the MQTT client, and
deleted by :meth:`Outbox.ack_many` from the PUBACK. A broker outage, a crash or
a restart of the service therefore loses nothing; pending rows are sent again
in id order. The row id is the event's ``seq`` (``AUTOINCREMENT`` never reuses
one), which lets subscribers drop the rare duplicate that a crash between
"broker received" and "PUBACK processed" can cause (at-least-once delivery).

Bounded, and never silent about it:

* **Size cap** (``max_events``, ``mqtt.outbox_max_events``): storing an event
  beyond the cap first deletes the *oldest* pending events. Each one is counted
  in :attr:`Outbox.dropped` (the sink logs it and reports ``events_dropped`` on
  ``status``).
* **Full disk**: a write that fails with ``database or disk is full`` first
  truncates the write-ahead log and drops the oldest pending events to make
  room (counted as above), then retries once; if that fails too, the new events
  are the ones dropped (counted). The caller never sees an exception for it.
* **Acknowledgement on a full disk**: deleting a row needs space in the
  write-ahead log. When it cannot be had, the acknowledged ids are kept in
  memory (never handed out again) and the highest id up to which everything is
  acknowledged is written in place into ``<outbox>.acked``, a file allocated
  when the outbox opens, so a restart does not send them again either.
* **Files**: write-ahead log, checkpointed every ``WAL_AUTOCHECKPOINT`` pages and
  truncated back to ``JOURNAL_SIZE_LIMIT`` bytes (measured by
  ``benchmarks/outbox_files.py``: the default 1000-page checkpoint left a 4 MB
  log behind; these settings keep it at 128 KiB at the same cost per event).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import EdgeposeError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    created REAL    NOT NULL
);
"""
#: Pages (4 KiB) in the write-ahead log before SQLite copies them into the database.
WAL_AUTOCHECKPOINT = 32
#: Bytes the write-ahead log is truncated back to after a checkpoint.
JOURNAL_SIZE_LIMIT = 128 * 1024
#: Default cap of :class:`Outbox` (about 330 bytes of disk per event: 3.3 MB).
DEFAULT_MAX_EVENTS = 10_000
_MARK = struct.Struct("<q")
_MARK_FILE_SIZE = 4096  # allocated once, then only overwritten in place: no new space needed later


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    payload: bytes
    qos: int
    created: float


class OutboxError(EdgeposeError):
    """The outbox file cannot be opened or written."""


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL is only in Python >= 3.11 (Pi OS Bullseye has 3.9)


def _disk_full(e: BaseException) -> bool:
    return isinstance(e, sqlite3.Error) and (
        getattr(e, "sqlite_errorcode", None) == _SQLITE_FULL or "full" in str(e).lower()
    )


class Outbox:
    """Thread-safe: the MQTT sender acknowledges while the service thread adds."""

    def __init__(self, path: str | Path, max_events: int = DEFAULT_MAX_EVENTS):
        self.path = Path(path)
        self.mark_path = self.path.with_name(self.path.name + ".acked")
        self.max_events = max_events
        #: Events deleted unsent by the size cap or a full disk (this process), and why, for the sink to report.
        self.dropped = 0
        self.drop_reasons: dict[str, int] = {}
        #: Acknowledgements not yet deleted from the file (full disk); they are never handed out again.
        self._acked: set[int] = set()
        self._mark = 0
        self._mark_fd: int | None = None
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit, each statement is its own durable transaction.
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            self._db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise OutboxError(
                f"cannot open the event outbox {self.path}: {e}.",
                "set mqtt.outbox_path to a writable file on persistent storage, and free space on it.",
            ) from None
        self._closed = False
        self._open_mark()
        if self._mark:
            self._try_delete_acked()
        self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE id > ?", (self._mark,)).fetchone()[0])

    # -- the acknowledged-up-to mark (full disk) ---------------------------------
    def _open_mark(self) -> None:
        try:
            fd = os.open(self.mark_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            log.warning(
                "outbox: cannot open %s (%s); acknowledgements on a full disk are kept in memory only",
                self.mark_path,
                e,
            )
            return
        try:
            data = os.pread(fd, _MARK.size, 0)
            self._mark = _MARK.unpack(data)[0] if len(data) == _MARK.size else 0
            if os.fstat(fd).st_size < _MARK_FILE_SIZE:
                os.posix_fallocate(fd, 0, _MARK_FILE_SIZE) if hasattr(os, "posix_fallocate") else os.ftruncate(
                    fd, _MARK_FILE_SIZE
                )
                os.fsync(fd)
        except OSError as e:
            log.warning(
                "outbox: cannot allocate %s (%s); acknowledgements on a full disk are kept in memory only",
                self.mark_path,
                e,
            )
            os.close(fd)
            return
        self._mark_fd = fd

    def _write_mark(self) -> None:
        """Advance the mark over every acknowledged row at its start (lock held)."""
        mark = self._mark
        for (row_id,) in self._db.execute("SELECT id FROM outbox WHERE id > ? ORDER BY id", (mark,)):
            if row_id not in self._acked:
                break
            mark = row_id
        else:
            mark = max([mark, *self._acked])
        if mark == self._mark:
            return
        self._mark = mark
        self._acked = {i for i in self._acked if i > mark}
        if self._mark_fd is not None:
            try:
                os.pwrite(self._mark_fd, _MARK.pack(mark), 0)
                os.fsync(self._mark_fd)
            except OSError as e:
                log.warning("outbox: cannot write %s: %s", self.mark_path, e)

    def _try_delete_acked(self) -> bool:
        """Delete rows acknowledged while the disk was full (lock held); True when nothing is left to delete."""
        try:
            self._db.execute("DELETE FROM outbox WHERE id <= ?", (self._mark,))
            if self._acked:
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in sorted(self._acked)])
                self._acked.clear()
            return True
        except sqlite3.Error as e:
            if not _disk_full(e):
                raise
            return False

    def _free_log(self) -> None:
        """Give the write-ahead log's space back to the file system (best effort, lock held)."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass

    # -- writing -------------------------------------------------------------------
    def put(self, topic: str, payload: bytes | Callable[[int], bytes], qos: int = 1) -> int | None:
        """Store one message durably; returns its id (None if it had to be dropped, see :attr:`dropped`).

        ``payload`` may be a function of the id, for payloads that carry their own ``seq``.
        """
        ids = self.put_many([(topic, payload, qos)])
        return ids[0] if ids else None

    def put_many(self, items: list[tuple[str, bytes | Callable[[int], bytes], int]]) -> list[int]:
        """Store several messages in one transaction (all or none); returns their ids.

        At the size cap or on a full disk the oldest pending events make room (counted in :attr:`dropped`);
        if there is still no room, these items are dropped (counted) and ``[]`` is returned.
        """
        if not items:
            return []
        with self._lock:
            over = self._count + len(items) - self.max_events
            if over > 0:
                self._drop_oldest(over, "outbox full (mqtt.outbox_max_events)")
            try:
                return self._insert(items)
            except sqlite3.Error as e:
                if not _disk_full(e):
                    raise OutboxError(
                        f"cannot write to the event outbox {self.path}: {e}.", "fix the file's permissions."
                    ) from None
            # Disk full: give the log's space back, drop the oldest events to make room, try once more.
            self._free_log()
            self._drop_oldest(max(len(items), self._count // 10, 1), "disk full")
            self._free_log()
            try:
                return self._insert(items)
            except sqlite3.Error as e:
                if not _disk_full(e):
                    raise OutboxError(
                        f"cannot write to the event outbox {self.path}: {e}.", "fix the file's permissions."
                    ) from None
                self._count_drop(len(items), "disk full")
                return []

    def _insert(self, items: list[tuple[str, bytes | Callable[[int], bytes], int]]) -> list[int]:
        ids = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for topic, payload, qos in items:
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, created) VALUES (?, ?, ?, ?)",
                    (topic, b"" if callable(payload) else sqlite3.Binary(payload), int(qos), time.time()),
                )
                row_id = int(cur.lastrowid or 0)
                if callable(payload):
                    self._db.execute(
                        "UPDATE outbox SET payload = ? WHERE id = ?", (sqlite3.Binary(payload(row_id)), row_id)
                    )
                ids.append(row_id)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._count += len(ids)
        return ids

    def _count_drop(self, n: int, reason: str) -> None:
        if n > 0:
            self.dropped += n
            self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + n

    def _drop_oldest(self, n: int, reason: str) -> None:
        """Delete the ``n`` oldest pending events (lock held); counted, never silent."""
        rows = [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (self._mark, n + len(self._acked))
            ).fetchall()
        ]
        victims = [i for i in rows if i not in self._acked][:n]
        if not victims:
            return
        try:
            self._db.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (self._mark + 1, victims[-1]))
        except sqlite3.Error as e:
            if not _disk_full(e):
                raise
            # Cannot even delete: hide them like acknowledged rows (the mark file keeps that across a restart).
            self._acked.update(victims)
            self._write_mark()
        else:
            self._acked = {i for i in self._acked if i > victims[-1]}
        self._count -= len(victims)
        self._count_drop(len(victims), reason)

    # -- reading and acknowledging ---------------------------------------------------
    def pending(self, after_id: int = 0, limit: int = 100) -> list[OutboxItem]:
        """Unacknowledged messages with id > ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (max(after_id, self._mark), limit + len(self._acked)),
            ).fetchall()
            acked = self._acked
        items = [OutboxItem(int(r[0]), r[1], bytes(r[2]), int(r[3]), float(r[4])) for r in rows if r[0] not in acked]
        return items[:limit]

    def ack(self, item_id: int) -> None:
        self.ack_many([item_id])

    def ack_many(self, ids: Iterable[int]) -> None:
        """Retire acknowledged messages; never fails for lack of disk space (see the module doc)."""
        ids = sorted({i for i in ids if i > self._mark})
        if not ids:
            return
        with self._lock:
            present: set[int] = set()
            for k in range(0, len(ids), 500):  # rows dropped by the cap meanwhile are not pending any more
                chunk = ids[k : k + 500]
                q = f"SELECT id FROM outbox WHERE id IN ({','.join('?' * len(chunk))})"
                present.update(r[0] for r in self._db.execute(q, chunk))
            new = present - self._acked
            self._acked |= new
            self._count = max(self._count - len(new), 0)
            if not self._try_delete_acked():
                self._free_log()
                if not self._try_delete_acked():
                    self._write_mark()  # durable without new space; deleted on a later ack or at the next start

    def __len__(self) -> int:
        """Events not yet acknowledged (kept in memory: cheap enough for every status message)."""
        return self._count

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._db.close()
                self._closed = True
                if self._mark_fd is not None:
                    os.close(self._mark_fd)
                    self._mark_fd = None
