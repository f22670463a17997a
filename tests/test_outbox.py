"""The durable event outbox (SQLite)."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from edgepose.sinks.outbox import Outbox, OutboxError


def test_fifo_ack_and_ids_never_reused(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ids = [ob.put("t/events", f"e{i}".encode()) for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [i.payload for i in ob.pending(limit=2)] == [b"e0", b"e1"]
    assert [i.id for i in ob.pending(after_id=3)] == [4, 5]
    ob.ack(5)
    ob.ack(2)
    assert [i.id for i in ob.pending()] == [1, 3, 4] and len(ob) == 3
    # AUTOINCREMENT: an acked tail id is not handed out again (subscribers dedupe on seq).
    assert ob.put("t/events", b"x") == 6


def test_payload_can_carry_its_own_id(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ids = ob.put_many([("t", lambda seq: f'{{"seq":{seq}}}'.encode(), 1) for _ in range(3)])
    assert [i.payload for i in ob.pending()] == [f'{{"seq":{i}}}'.encode() for i in ids]


def test_put_many_is_all_or_nothing(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob.put("t", b"before")

    def boom(seq: int) -> bytes:
        raise RuntimeError("payload builder failed")

    with pytest.raises(RuntimeError):
        ob.put_many([("t", b"a", 1), ("t", boom, 1)])
    assert [i.payload for i in ob.pending()] == [b"before"]
    assert ob.put("t", b"after") == 2  # usable afterwards; the rolled-back ids were never published, so reuse is safe


def _writer(path: str, n: int) -> None:
    ob = Outbox(path)
    for i in range(n):
        ob.put("t", f"{i}".encode())
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no clean exit


def test_survives_a_killed_writer(tmp_path):
    path = str(tmp_path / "o.sqlite")
    p = mp.get_context("spawn").Process(target=_writer, args=(path, 50))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    ob = Outbox(path)
    assert [i.payload for i in ob.pending(limit=100)] == [f"{i}".encode() for i in range(50)]


def test_unwritable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="outbox_path"):
        Outbox(blocker / "sub" / "o.sqlite")
