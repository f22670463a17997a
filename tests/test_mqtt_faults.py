"""Fault scenarios against real Mosquitto processes and real ``edgepose serve`` processes, bounded in time.

Each scenario is one a device in the field meets many times a day: broker restarts on a busy CPU,
a second client taking over the device's client id, a service killed during an outage, listeners that
are not plain MQTT. Figures (events produced / delivered / duplicated / stuck) are printed: run with
``-s`` to see them, e.g. ``.venv/bin/python -m pytest -s -q tests/test_mqtt_faults.py -k restarts``.
"""
from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from edgepose.types import ActionEvent
from tests.conftest_mqtt import TEST_MODEL, frame
from tests.mosquitto import Subscriber

DEVICE = "fault-pi"
#: Lines that must never appear in the service's log: a jammed or crashing sender.
SENDER_ERRORS = ("outbox pump error", "Traceback", "error in _on_", "Message publish failed")


def write_config(path: Path, port: int, **mqtt: object) -> Path:
    lines = [f'device_id = "{DEVICE}"', "[model]", f'path = "{TEST_MODEL}"', "[mqtt]", 'host = "127.0.0.1"', f"port = {port}",
             f'outbox_path = "{path.parent / "outbox.sqlite"}"', "backoff_min = 0.1", "backoff_max = 0.5", "status_interval = 1.0"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in mqtt.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_recording(path: Path, poses: list, n: int = 200) -> Path:
    """Frame records of real poses with one event on every frame."""
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps(frame(i, poses, [ActionEvent(1, "step", "instant", i / 30)]).to_dict()) + "\n")
    return path


def serve(*args: str, verbose: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgepose.cli", *(["-v"] if verbose else []), "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"edgepose serve did not stop:\n{err[-3000:]}") from None
    return proc.returncode, err


@contextlib.contextmanager
def cpu_load(n: int = 2, seconds: float = 180.0) -> Iterator[None]:
    """``n`` busy processes (one per core here), each bounded to ``seconds`` even if the test dies."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def outbox_counts(path: Path) -> tuple[int, int]:
    """(rows left, last seq ever given) of an outbox file, read with plain sqlite3."""
    db = sqlite3.connect(str(path))
    try:
        left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(left), int(row[0]) if row else 0
    finally:
        db.close()


def event_seqs(sub: Subscriber) -> list[int]:
    return [d["seq"] for d in sub.json_on("/events")]


def test_twenty_broker_restarts_under_cpu_load(persistent_broker, tmp_path, real_poses):
    """Defect 1: 20 broker restarts (SIGTERM, persistence on) while serve sends one event per frame at 100 fps,
    with two busy processes on the cores: no seq gap at a persistent QoS 1 subscriber, nothing stuck, no sender error."""
    b = persistent_broker
    sub = Subscriber(b.port, f"edgepose/{DEVICE}/events", client_id="fault-dashboard", persistent=True)
    rec = write_recording(tmp_path / "rec.jsonl", real_poses)
    cfg = write_config(tmp_path / "device.toml", b.port)
    rng = random.Random(9)
    restarts = 0
    with cpu_load():
        proc = serve("--config", str(cfg), "--replay", str(rec), "--replay-loop", "--replay-fps", "100")
        try:
            assert sub.wait_for(lambda s: len(s.on("/events")) >= 20, timeout=60), "no event arrived before the restarts"
            for _ in range(20):
                time.sleep(rng.uniform(0.2, 1.0))
                b.stop()
                time.sleep(rng.uniform(0.0, 0.3))
                b.start()
                restarts += 1
            time.sleep(2.0)  # a last stretch of normal traffic after the final restart
        finally:
            code, err = stop(proc, timeout=60)
    left, produced = outbox_counts(tmp_path / "outbox.sqlite")
    got_all = sub.wait_for(lambda s: set(event_seqs(s)) >= set(range(1, produced + 1)), timeout=30)
    sub.close()
    seqs = event_seqs(sub)
    delivered = len(set(seqs))
    duplicated = len(seqs) - delivered
    missing = sorted(set(range(1, produced + 1)) - set(seqs))
    received = [ln for ln in b.log_text().splitlines() if f"Received PUBLISH from edgepose-{DEVICE}" in ln and "/events'" in ln]
    print(f"\nrestarts survived: {restarts}; events produced {produced}, delivered {delivered}, duplicated {duplicated} at the "
          f"subscriber ({len(received) - produced} re-sent by the device), stuck in outbox {left}, missing {len(missing)}")
    sender_errors = [ln for ln in err.splitlines() if any(s in ln for s in SENDER_ERRORS)]
    assert code == 0, err[-3000:]
    assert not sender_errors, sender_errors[:5]
    assert left == 0, f"{left} events stuck in the outbox after a graceful stop"
    assert got_all and not missing, f"{len(missing)} seq gaps, first {missing[:10]}"
    assert produced > 500  # the scenario really ran at load (100 fps for 20+ s)
