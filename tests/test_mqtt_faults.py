"""Fault scenarios against real Mosquitto processes and real ``edgepose serve`` processes, bounded in time.

Each scenario is one a device in the field meets many times a day: broker restarts on a busy CPU,
a second client taking over the device's client id, a service killed during an outage, listeners that
are not plain MQTT. Figures (events produced / delivered / duplicated / stuck) are printed: run with
``-s`` to see them, e.g. ``.venv/bin/python -m pytest -s -q tests/test_mqtt_faults.py -k restarts``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from edgepose.types import ActionEvent
from tests.conftest_mqtt import TEST_MODEL, write_recording
from tests.mosquitto import Subscriber
from tests.procs import finish, serve, wait_until, write_device_config

DEVICE = "fault-pi"
#: Lines that must never appear in the service's log: a jammed or crashing sender.
SENDER_ERRORS = ("outbox pump error", "Traceback", "error in _on_", "Message publish failed")


def write_config(path: Path, port: int, **mqtt: object) -> Path:
    mqtt = {
        "host": "127.0.0.1",
        "port": port,
        "outbox_path": str(path.parent / "outbox.sqlite"),
        "backoff_min": 0.1,
        "backoff_max": 0.5,
        "status_interval": 1.0,
        **mqtt,
    }
    return write_device_config(path, DEVICE, {"model": {"path": TEST_MODEL}, "mqtt": mqtt})


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


@pytest.mark.integration
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
            assert sub.wait_for(lambda s: len(s.on("/events")) >= 20, timeout=60), (
                "no event arrived before the restarts"
            )
            for _ in range(20):
                time.sleep(rng.uniform(0.2, 1.0))
                b.stop()
                time.sleep(rng.uniform(0.0, 0.3))
                b.start()
                restarts += 1
            time.sleep(2.0)  # a last stretch of normal traffic after the final restart
        finally:
            code, err = finish(proc, 60, terminate=True)
    left, produced = outbox_counts(tmp_path / "outbox.sqlite")
    got_all = sub.wait_for(lambda s: set(event_seqs(s)) >= set(range(1, produced + 1)), timeout=30)
    sub.close()
    seqs = event_seqs(sub)
    delivered = len(set(seqs))
    duplicated = len(seqs) - delivered
    missing = sorted(set(range(1, produced + 1)) - set(seqs))
    received = [
        ln for ln in b.log_text().splitlines() if f"Received PUBLISH from edgepose-{DEVICE}" in ln and "/events'" in ln
    ]
    print(
        f"\nrestarts survived: {restarts}; events produced {produced}, delivered {delivered}, duplicated {duplicated} at the "
        f"subscriber ({len(received) - produced} re-sent by the device), stuck in outbox {left}, missing {len(missing)}"
    )
    sender_errors = [ln for ln in err.splitlines() if any(s in ln for s in SENDER_ERRORS)]
    assert code == 0, err[-3000:]
    assert not sender_errors, sender_errors[:5]
    assert left == 0, f"{left} events stuck in the outbox after a graceful stop"
    assert got_all and not missing, f"{len(missing)} seq gaps, first {missing[:10]}"
    assert produced > 300  # the scenario really ran (100 fps for 20+ s; fewer when the machine is busy)


@contextlib.contextmanager
def bare_listener(mode: str) -> Iterator[int]:
    """A TCP server on loopback that is not MQTT: ``close`` accepts and closes, ``silent`` accepts and never answers."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            if mode == "close":
                conn.close()
            else:
                held.append(conn)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        done.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


def _make_sink(port: int, tmp_path: Path, **kw: object):
    from edgepose.mqtt.config import MqttConfig
    from edgepose.mqtt.sink import MqttSink

    kw = {"host": "127.0.0.1", "backoff_min": 1.0, "backoff_max": 4.0, **kw}
    cfg = MqttConfig(port=port, outbox_path=str(tmp_path / "outbox.sqlite"), **kw)
    return MqttSink(cfg, DEVICE)


@pytest.mark.integration  # fake brokers on real ports, 12 s each
@pytest.mark.parametrize(
    "listener,cause",
    [
        ("tls", "that port speaks TLS"),
        ("close", "closed it without a CONNACK"),
        ("silent", "sent no CONNACK within 5 s"),
    ],
)
def test_wrong_listener_is_named_within_10_s_then_backs_off(listener, cause, tmp_path, caplog, request, real_poses):
    """Defect 4: a plain client at a TLS port, an accept-and-close server, a server that never answers:
    one clear line at the default level within 10 s naming the likely cause, then back-off (no flood)."""
    caplog.set_level(logging.WARNING, logger="edgepose")
    with contextlib.ExitStack() as stack:
        if listener == "tls":
            port = request.getfixturevalue("tls_broker").port
        else:
            port = stack.enter_context(bare_listener(listener))
        sink = _make_sink(port, tmp_path).start()
        try:
            sink.publish_events([ActionEvent(1, "step", "instant", 0.0)])
            t0 = time.monotonic()
            wait_until(
                lambda: any(cause in r.getMessage() for r in caplog.records), 10, fail=False
            )  # asserted below, with the log
            took = time.monotonic() - t0
            time.sleep(max(0.0, 12.0 - took))  # watch the back-off for a while
        finally:
            sink.abort()
    lines = [r for r in caplog.records if r.name.startswith("edgepose")]
    named = [r for r in lines if cause in r.getMessage()]
    assert named and took < 10, [r.getMessage() for r in lines]
    assert named[0].levelno == logging.ERROR and "Fix:" in named[0].getMessage()
    # Back-off 1, 2, 4 s: a handful of attempts in 12 s, each at most one line, the full text only once.
    assert 1 <= len(lines) <= 6 and sum(r.levelno == logging.ERROR for r in lines) == 1, [r.getMessage() for r in lines]
    assert len(sink.outbox) == 1  # the event waits for a real broker


def _statuses(sub: Subscriber) -> list[dict]:
    return sub.json_on("/status")


@pytest.mark.integration
def test_online_once_per_reconnect_and_the_will_names_the_lost_connection(persistent_broker, tmp_path):
    """Defect 3: each reconnect sends ``online`` once (it was twice after a missed heartbeat), and the Last Will's
    ts is when the lost connection was made (it was the process start)."""
    b = persistent_broker
    sub = Subscriber(b.port, f"edgepose/{DEVICE}/status")
    sink = _make_sink(b.port, tmp_path, backoff_min=0.1, backoff_max=0.5, status_interval=60).start()
    try:
        assert sink.wait_connected(10)
        time.sleep(1.5)
        b.stop()
        wait_until(lambda: not sink.connected, 5, "the sink to disconnect")
        sink.publish_status("online")  # a heartbeat while disconnected
        b.start()
        assert sink.wait_connected(10)
        t_reconnect = time.time()
        time.sleep(1.5)
        onlines_after = [d for d in _statuses(sub) if d["state"] == "online" and d["ts"] >= t_reconnect - 1.0]
        assert len(onlines_after) == 1, onlines_after
        assert onlines_after[0]["heartbeat"] == 60
    finally:
        sink.abort()  # no goodbye: the broker sends the Last Will
    assert sub.wait_for(lambda s: any(d["state"] == "offline" for d in _statuses(s)), 10)
    sub.close()
    will = [d for d in _statuses(sub) if d["state"] == "offline"][-1]
    assert will["reason"] == "connection lost" and will["ts"] >= t_reconnect - 1.0, (will, t_reconnect)


@pytest.mark.integration
def test_retained_online_does_not_outlive_a_device_killed_during_an_outage(persistent_broker, tmp_path, real_poses):
    """Defect 3 and the SIGKILL scenario: the service dies while the broker is down (no Last Will can be sent).
    MQTT 5: the broker's retained ``online`` expires after 3 heartbeats; no event is lost; the next start sends them."""
    b = persistent_broker
    events = Subscriber(b.port, f"edgepose/{DEVICE}/events", client_id="fault-events", persistent=True)
    rec = write_recording(tmp_path / "rec.jsonl", real_poses, n=50)
    cfg = write_config(tmp_path / "device.toml", b.port)  # status_interval = 1 s: expiry 3 s
    proc = serve("--config", str(cfg), "--replay", str(rec), "--replay-loop", "--replay-fps", "30")
    try:
        assert events.wait_for(lambda s: len(s.on("/events")) >= 10, timeout=60)
        b.stop()
        time.sleep(1.0)  # events pile up in the outbox
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    left, produced = outbox_counts(tmp_path / "outbox.sqlite")
    assert left > 0  # the outage kept some
    b.start()
    t_back = time.monotonic()
    # The broker restored the retained online from before the outage; it must not outlive 3 heartbeats.
    time.sleep(max(0.0, 4.0 - (time.monotonic() - t_back)))
    late = Subscriber(b.port, f"edgepose/{DEVICE}/status")
    time.sleep(1.0)
    late.close()
    assert not any(d["state"] == "online" for d in _statuses(late)), _statuses(late)
    # The next start sends what the killed one stored, in order, and nothing is stuck.
    code, err = finish(serve("--config", str(cfg), "--replay", str(rec), "--max-frames", "5"), 60)
    assert code == 0, err[-2000:]
    left2, produced2 = outbox_counts(tmp_path / "outbox.sqlite")
    assert events.wait_for(lambda s: set(event_seqs(s)) >= set(range(1, produced2 + 1)), timeout=20)
    events.close()
    print(
        f"\nSIGKILL during an outage: {left} events stored by the killed service, {produced2} produced in all, "
        f"{len(set(event_seqs(events)))} delivered, {left2} stuck"
    )
    assert left2 == 0


@pytest.mark.integration
def test_home_assistant_birth_flood_is_rate_limited(broker, tmp_path, monkeypatch):
    """Defect 7: 2,000 ``online`` births on homeassistant/status cost one extra discovery round, not 6,000 publishes."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    disc = Subscriber(broker.port, "homeassistant/+/+/+/config")
    sink = _make_sink(broker.port, tmp_path, homeassistant={"enabled": True})
    sink._discovery.min_interval = 2.0
    sink.start()
    try:
        assert sink.wait_connected(10)
        assert disc.wait_for(lambda s: len(s.messages) >= 3, 10)
        time.sleep(0.5)
        ha = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-home-assistant")
        ha.connect("127.0.0.1", broker.port)
        ha.loop_start()
        for _ in range(2000):
            ha.publish("homeassistant/status", b"online", qos=0)
        time.sleep(4.0)  # past the rate-limit window: the trailing round has gone out
        ha.disconnect()
        ha.loop_stop()
    finally:
        sink.close()
    disc.close()
    config_msgs = [t for t, _, retain in disc.messages if not retain]
    assert len(config_msgs) == 6, len(config_msgs)  # the connect's round + one for the whole flood


def test_password_over_plain_tcp_to_another_host_is_warned_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edgepose")
    for host, expect in (("127.0.0.1", 0), ("192.0.2.7", 1)):  # 192.0.2.0/24: TEST-NET, never routed
        caplog.clear()
        sink = _make_sink(1883, tmp_path, username="dev", password="hunter22-secret")
        sink.cfg = sink.cfg.model_copy(update={"host": host})
        sink.start()  # warns before it connects
        sink.abort()
        warned = [r.getMessage() for r in caplog.records if "unencrypted" in r.getMessage()]
        assert len(warned) == expect, warned
        assert all("hunter22" not in w for w in warned)


@pytest.mark.integration
def test_client_id_takeover_jams_nothing(persistent_broker, tmp_path, real_poses):
    """A second client takes over the device's client id 5 times while events flow at 100 fps: every event
    arrives (no seq gap), nothing stays in the outbox, no sender error. (Mosquitto 2.0.11 closes the socket
    without the MQTT 5 "session taken over" reason; brokers that send it get the cause named in the log.)"""
    b = persistent_broker
    sub = Subscriber(b.port, f"edgepose/{DEVICE}/events", client_id="fault-takeover-dash", persistent=True)
    rec = write_recording(tmp_path / "rec.jsonl", real_poses)
    with cpu_load(seconds=120):
        proc = serve(
            "--config",
            str(write_config(tmp_path / "device.toml", b.port)),
            "--replay",
            str(rec),
            "--replay-loop",
            "--replay-fps",
            "100",
        )
        _takeovers(proc, sub, b.port)
    code, err = finish(proc, 60, terminate=True)
    left, produced = outbox_counts(tmp_path / "outbox.sqlite")
    assert sub.wait_for(lambda s: set(event_seqs(s)) >= set(range(1, produced + 1)), timeout=20)
    sub.close()
    print(
        f"\nclient-id takeover x5 under CPU load: events produced {produced}, delivered {len(set(event_seqs(sub)))}, stuck {left}"
    )
    assert code == 0 and left == 0, err[-2000:]
    assert not [ln for ln in err.splitlines() if any(s in ln for s in SENDER_ERRORS)]
    assert err.count("connection to 127.0.0.1") >= 5  # each takeover was seen (and logged) as a lost connection


def _takeovers(proc: subprocess.Popen, sub: Subscriber, port: int) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    try:
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 20, timeout=60)
        for _ in range(5):
            twin = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=f"edgepose-{DEVICE}", protocol=MQTTProtocolVersion.MQTTv5
            )
            twin.connect("127.0.0.1", port)
            twin.loop_start()
            time.sleep(0.4)
            twin.disconnect()
            twin.loop_stop()
            time.sleep(0.6)
        time.sleep(1.0)
    except BaseException:
        proc.kill()
        raise


@pytest.mark.integration
def test_full_disk_outbox_keeps_the_service_streaming(small_disk, tmp_path, real_poses):
    """Defect 2: the outbox on a full 600 KiB file system. Broker down: the service keeps running (it exited after
    64 events) and drops the oldest events, counted and logged. Broker up: poses and status flow, the stored events
    are acknowledged (it needed disk space for that), a graceful stop leaves nothing, a restart re-sends nothing."""
    from tests.mosquitto import Mosquitto
    from tests.procs import free_port

    port = free_port()
    rec = write_recording(tmp_path / "rec.jsonl", real_poses)
    cfg = write_config(tmp_path / "device.toml", port, outbox_path=str(small_disk / "outbox.sqlite"))
    proc = serve("--config", str(cfg), "--replay", str(rec), "--replay-loop", "--replay-fps", "200")
    try:
        # Until the small disk is full (about 1,500 events), plus a while longer.
        wait_until(
            lambda: (
                os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize < 64 * 1024 or proc.poll() is not None
            ),
            90,
            "the outbox to fill the disk",
        )
        time.sleep(2.0)
        assert proc.poll() is None, "serve stopped on a full disk"
        with Mosquitto(tmp_path / "broker", port=port) as b:
            sub = Subscriber(b.port, f"edgepose/{DEVICE}/#")
            assert sub.wait_for(lambda s: len(s.on("/poses")) >= 20 and len(s.on("/status")) >= 2, timeout=20)
            assert sub.wait_for(
                lambda s: any(d.get("events_pending", 1) < 50 for d in s.json_on("/status")), timeout=60
            ), [(d.get("events_pending"), d.get("events_dropped")) for d in sub.json_on("/status")][-5:]
            status = [d for d in sub.json_on("/status") if d["state"] == "online"][-1]
            code, err = finish(proc, 60, terminate=True)
            time.sleep(0.3)
            first_seqs = set(event_seqs(sub))
            assert code == 0, err[-3000:]
            left, produced = outbox_counts(small_disk / "outbox.sqlite")
            # The next start on the same disk sends only its own events.
            statuses_before = len(sub.json_on("/status"))
            code2, err2 = finish(serve("--config", str(cfg), "--replay", str(rec), "--max-frames", "3"), 60)
            assert code2 == 0, err2[-3000:]

            # Events its drain did not get out in time stay in the durable outbox, said in one line.
            kept = sum(int(n) for n in re.findall(r"MQTT: (\d+) event\(s\) stay in the outbox", err2))

            def second_run_accounted(s) -> bool:
                # Each of its 3 events is delivered, kept in the outbox for the next start (said so), or (the disk
                # may still be full with nothing older left to drop) counted as dropped on its own final status:
                # never lost silently.
                mine = [d for d in s.json_on("/status")[statuses_before:] if d["state"] == "offline"]
                new = set(event_seqs(s)) - first_seqs
                return bool(mine) and len(new) + mine[-1].get("events_dropped", 0) + kept >= 3

            assert sub.wait_for(second_run_accounted, timeout=20), err2[-3000:]
            time.sleep(0.5)
            sub.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    second = [q for q in event_seqs(sub) if q not in first_seqs]
    print(
        f"\nfull disk: events produced {produced}, dropped (oldest first) {status['events_dropped']}, "
        f"delivered {len(first_seqs)}, left after stop {left}; restart sent {second}"
    )
    assert status["events_dropped"] > 0 and "dropped unsent so far, oldest first (" in err
    assert "Traceback" not in err and "outbox pump error" not in err
    assert left == 0
    assert len(second) == 3 and min(second) > max(first_seqs), second
