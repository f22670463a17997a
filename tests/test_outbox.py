"""The durable event outbox (SQLite)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from edgepose.mqtt.outbox import Outbox, OutboxError


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


def test_cap_drops_the_oldest_and_counts_them(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", max_events=10)
    ids = [ob.put("t", f"{i}".encode()) for i in range(15)]
    assert ids == list(range(1, 16))  # seq keeps counting: a consumer sees the gap
    assert [i.payload for i in ob.pending(limit=100)] == [f"{i}".encode() for i in range(5, 15)]
    assert len(ob) == 10 and ob.dropped == 5 and ob.drop_reasons == {"outbox full (mqtt.outbox_max_events)": 5}
    ob.ack_many([1, 2, 6])  # acks of rows already dropped are ignored, not counted twice
    assert len(ob) == 9 and [i.id for i in ob.pending(limit=3)] == [7, 8, 9]


def test_files_stay_bounded(tmp_path):
    """The write-ahead log is checkpointed and truncated (it reached 4 MB with SQLite's defaults)."""
    ob = Outbox(tmp_path / "o.sqlite")
    wal = tmp_path / "o.sqlite-wal"
    biggest = 0
    for i in range(600):
        ob.put("t", b"x" * 260)
        if i >= 20:
            ob.ack(i - 19)
        biggest = max(biggest, wal.stat().st_size)
    from edgepose.mqtt.outbox import JOURNAL_SIZE_LIMIT, WAL_AUTOCHECKPOINT

    assert biggest <= max(JOURNAL_SIZE_LIMIT, (WAL_AUTOCHECKPOINT + 8) * 4120), biggest
    assert (tmp_path / "o.sqlite").stat().st_size < 200_000


@pytest.mark.integration
def test_full_disk_never_raises_and_acknowledges(small_disk):
    """On a full 600 KiB file system: storing drops the oldest (counted), acknowledging still works and lasts."""
    path = small_disk / "o.sqlite"
    ob = Outbox(path)
    stored = []
    for _ in range(4000):
        got = ob.put("t/events", b"e" * 260)
        if got is not None:
            stored.append(got)
        if ob.dropped:
            break
    assert ob.dropped > 0, "the disk never filled"
    assert "disk full" in ob.drop_reasons
    n_pending = len(ob)
    assert n_pending == len(ob.pending(limit=100_000)) > 100
    # Keep the disk full to the last byte, then acknowledge everything.
    try:
        with open(small_disk / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    ob.ack_many([i.id for i in ob.pending(limit=100_000)])
    assert len(ob) == 0 and ob.pending() == []
    ob.close()
    # A restart on the still-full disk sends nothing again.
    ob2 = Outbox(path)
    assert len(ob2) == 0 and ob2.pending() == []
    ob2.close()
    (small_disk / "filler").unlink(missing_ok=True)
    ob3 = Outbox(path)
    assert ob3.put("t/events", b"after") is not None and [i.payload for i in ob3.pending()] == [b"after"]
    ob3.close()
