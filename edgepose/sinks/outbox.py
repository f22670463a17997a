"""Durable event outbox: an SQLite queue that an event leaves only once the broker acknowledged it.

Events are written (and fsynced: ``synchronous=FULL``, since a Pi loses power
rather than shutting down) before they are handed to the MQTT client, and
deleted by :meth:`Outbox.ack` from the PUBACK. A broker outage, a crash or a
restart of the service therefore loses nothing; pending rows are sent again
in id order. The row id is the event's ``seq`` (``AUTOINCREMENT`` never reuses
one), which lets subscribers drop the rare duplicate that a crash between
"broker received" and "PUBACK processed" can cause (at-least-once delivery).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import EdgeposeError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    created REAL    NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    payload: bytes
    qos: int
    created: float


class OutboxError(EdgeposeError):
    """The outbox file cannot be opened or written."""


class Outbox:
    """Thread-safe: the MQTT network thread acks while the service thread adds."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit, each statement is its own durable transaction.
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise OutboxError(
                f"cannot open the event outbox {self.path}: {e}.",
                "set mqtt.outbox_path to a writable file on persistent storage.",
            ) from None
        self._closed = False

    def put(self, topic: str, payload: bytes | Callable[[int], bytes], qos: int = 1) -> int:
        """Store one message durably; returns its id.

        ``payload`` may be a function of the id, for payloads that carry their own ``seq``.
        """
        return self.put_many([(topic, payload, qos)])[0]

    def put_many(self, items: list[tuple[str, bytes | Callable[[int], bytes], int]]) -> list[int]:
        """Store several messages in one transaction (all or none)."""
        ids = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for topic, payload, qos in items:
                    cur = self._db.execute(
                        "INSERT INTO outbox (topic, payload, qos, created) VALUES (?, ?, ?, ?)",
                        (topic, b"" if callable(payload) else sqlite3.Binary(payload), int(qos), time.time()),
                    )
                    row_id = int(cur.lastrowid)
                    if callable(payload):
                        self._db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (sqlite3.Binary(payload(row_id)), row_id))
                    ids.append(row_id)
                self._db.execute("COMMIT")
            except BaseException as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise OutboxError(f"cannot write to the event outbox {self.path}: {e}.", "free disk space or fix the file's permissions.") from None
                raise
        return ids

    def pending(self, after_id: int = 0, limit: int = 100) -> list[OutboxItem]:
        """Unacknowledged messages with id > ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [OutboxItem(int(r[0]), r[1], bytes(r[2]), int(r[3]), float(r[4])) for r in rows]

    def ack(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._db.close()
                self._closed = True
