"""``edgepose serve`` / ``edgepose listen`` as processes, and the Service loop, against real Mosquitto brokers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgepose.errors import SourceError
from edgepose.mqtt.config import MqttConfig
from edgepose.mqtt.sink import MqttSink
from edgepose.service.runner import Service
from tests.conftest import SHARED
from tests.conftest_mqtt import TEST_MODEL, check_schema, frame, write_recording
from tests.mosquitto import Mosquitto, Subscriber
from tests.procs import finish, free_port, serve, wait_until, write_device_config

pytestmark = pytest.mark.integration  # every test here starts a broker, a browser or a subprocess

DEVICE = "shelf-pi"


def serve_v(*args: str, **kw) -> subprocess.Popen:
    """``edgepose -v serve``: these tests read its info lines."""
    return serve(*args, verbose=True, **kw)


VIDEO = SHARED / "video" / "openpose_video.avi"


def write_config(path: Path, port: int, **mqtt) -> Path:
    return write_device_config(
        path,
        DEVICE,
        {
            "model": {"path": TEST_MODEL},
            "source": {"uri": VIDEO},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "outbox_path": path.parent / "outbox.sqlite",
                "backoff_min": 0.2,
                "backoff_max": 1.0,
                "status_interval": 1.0,
                **mqtt,
            },
        },
    )


def test_serve_real_pipeline_on_shared_video(broker, tmp_path):
    """Capture -> PoseNet -> tracking -> actions -> MQTT: a subscriber sees poses, events and status."""
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/#")
    cfg = write_config(tmp_path / "device.toml", broker.port)
    code, err = finish(serve_v("--config", str(cfg), "--max-frames", "60"), timeout=120)
    assert code == 0, err[-3000:]
    # The start summary names the decoder settings in force and where each came from.
    (start,) = [ln for ln in err.splitlines() if ln.startswith("edgepose serve: started:")]
    assert "; decoder: max_poses " in start and "(default)" in start, start
    assert sub.wait_for(lambda s: any(b'"offline"' in p for p in s.on("/status")))
    sub.close()
    got = {}
    for topic, payload, _ in sub.messages:
        got.setdefault(topic.rsplit("/", 1)[-1], []).append(check_schema(topic, payload, DEVICE))
    assert [p["frame"] for p in got["poses"]] == list(range(60))
    assert max(len(p["people"]) for p in got["poses"]) >= 3  # a crowd walks through the clip
    assert all("id" in person for p in got["poses"] for person in p["people"])  # tracked
    assert got["poses"][0]["width"] == 1280 and got["poses"][0]["height"] == 720
    assert len(got["events"]) >= 1 and [e["seq"] for e in got["events"]] == list(range(1, len(got["events"]) + 1))
    first, last = got["status"][0], got["status"][-1]
    assert first["state"] == "online" and first["model"] == TEST_MODEL.stem
    assert last["state"] == "offline" and last["reason"] == "max frames" and last["frames"] == 60
    assert last["events_pending"] == 0 and last["events_sent"] == len(got["events"])
    # Heartbeats every status_interval (1 s here) while the clip plays, with uptime and fps moving.
    online = [s for s in got["status"] if s["state"] == "online"]
    assert len(online) >= 3 and [s["uptime"] for s in online] == sorted(s["uptime"] for s in online)
    assert any(s.get("fps", 0) > 0 and s.get("camera") == "ok" for s in online)


def test_last_will_announces_offline_on_sigkill(broker, tmp_path, real_poses):
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/status")
    rec = write_recording(tmp_path / "rec.jsonl", real_poses, n=30, every=3)
    proc = serve_v(
        "--config",
        str(write_config(tmp_path / "device.toml", broker.port)),
        "--replay",
        str(rec),
        "--replay-loop",
        "--replay-fps",
        "30",
    )
    try:
        assert sub.wait_for(lambda s: any(b'"online"' in p for p in s.on("/status")), timeout=30), proc.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert sub.wait_for(lambda s: b'"offline"' in (s.on("/status") or [b""])[-1], timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    last = json.loads(sub.on("/status")[-1])
    check_schema("x/status", sub.on("/status")[-1], DEVICE)
    assert last["state"] == "offline" and last["reason"] == "connection lost"
    sub.close()
    # Retained: a dashboard that connects later sees the device offline too.
    late = Subscriber(broker.port, f"edgepose/{DEVICE}/status")
    assert late.wait_for(lambda s: len(s.messages) == 1)
    assert late.messages[0][2] is True and json.loads(late.messages[0][1])["state"] == "offline"
    late.close()


def _notify_socket(path: Path) -> tuple[socket.socket, list[str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[str] = []

    def read() -> None:
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=read, daemon=True).start()
    return sock, got


def test_sigterm_publishes_pending_and_announces_offline(tmp_path, real_poses):
    """Events made while the broker is away survive a stop and a restart; SIGTERM drains and says offline; systemd is told."""
    port = free_port()
    rec = write_recording(tmp_path / "rec.jsonl", real_poses, n=30, every=3)
    cfg = write_config(tmp_path / "device.toml", port)

    # 1. No broker: the service runs through the recording, keeps the events in its outbox and stops cleanly.
    code, err = finish(serve_v("--config", str(cfg), "--replay", str(rec), "--replay-fps", "60"), timeout=60)
    assert code == 0, err[-3000:]
    assert "refused the connection" in err and "Retrying with back-off" in err
    assert "10 event(s) stay in the outbox" in err

    # 2. Broker up: the next run sends the stored events first, then its own; SIGTERM drains and announces offline.
    with Mosquitto(tmp_path / "broker", port=port) as b:
        sub = Subscriber(b.port, f"edgepose/{DEVICE}/#")
        sock, notes = _notify_socket(tmp_path / "notify.sock")
        proc = serve_v(
            "--config",
            str(cfg),
            "--replay",
            str(rec),
            "--replay-loop",
            "--replay-fps",
            "30",
            env={
                "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                "WATCHDOG_USEC": "300000",
                "EDGEPOSE_HEALTH_FILE": str(tmp_path / "health"),
            },
        )
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 15, timeout=30), finish(proc)[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
        assert code == 0, err[-3000:]
        assert sub.wait_for(lambda s: b'"offline"' in (s.on("/status") or [b""])[-1])
        sub.close()
        sock.close()
    seqs = [e["seq"] for e in sub.json_on("/events")]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # in order, none lost, none twice
    last = json.loads(sub.on("/status")[-1])
    assert last["state"] == "offline" and last["reason"] == "stopped" and last["events_pending"] == 0
    assert any(json.loads(p)["state"] == "online" for p in sub.on("/status"))
    assert "received SIGTERM" in err
    # sd_notify: ready first (a replay loads no compiled code, so it asks for no more start time), watchdog
    # pets while running, stopping at the end.
    assert not [n for n in notes if n.startswith("EXTEND_TIMEOUT_USEC=")]
    assert notes and notes[0].startswith("READY=1")
    assert notes.count("WATCHDOG=1") >= 2 and "STOPPING=1" in notes
    assert (tmp_path / "health").exists()  # the container HEALTHCHECK's file, touched while alive
    assert notes.index("STOPPING=1") > max(i for i, n in enumerate(notes) if n.startswith("READY=1"))


def test_starting_asks_systemd_for_time_while_numba_loads_and_never_after_ready(tmp_path):
    """A cold numba cache (a new version) compiles for minutes on a slow board: while starting, the compiled
    decoder asks systemd for more time (EXTEND_TIMEOUT_USEC) and says what it does; after READY=1 nothing
    does, since that would only lengthen the watchdog."""
    sock, notes = _notify_socket(tmp_path / "notify.sock")
    code = (
        "from edgepose.model.posenet import load_posenet\n"
        "from edgepose.systemd import SystemdNotifier, extend_startup\n"
        f"load_posenet({str(TEST_MODEL)!r})\nSystemdNotifier().ready('up')\nprint(extend_startup(5, 'late'))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"
    wait_until(lambda: any(n.startswith("READY=1") for n in notes), 5, "READY=1")
    sock.close()
    ready = next(i for i, n in enumerate(notes) if n.startswith("READY=1"))
    before, after = notes[:ready], notes[ready + 1 :]
    assert [n.split("\n")[0] for n in before] == ["EXTEND_TIMEOUT_USEC=600000000"]
    assert "multi-pose decoder (uint8 heads)" in before[0]
    assert after == []


def test_missing_camera_is_reported_and_retried(broker, tmp_path, real_poses):
    """A camera that fails to open: status says unavailable (with the error), the loop retries, MQTT stays up."""
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/status")
    cfg = MqttConfig(host="127.0.0.1", port=broker.port, outbox_path=str(tmp_path / "o.sqlite"), status_interval=60)
    sink = MqttSink(cfg, DEVICE)
    attempts = []

    def frames():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise SourceError("camera /dev/video0 cannot be opened.", "plug the camera in.")
        return iter([frame(i, real_poses) for i in range(3)])

    svc = Service(sink, frames, status_interval=60, retry_min=0.1, retry_max=0.2)
    assert svc.run() == 0
    sub.wait_for(lambda s: b'"offline"' in (s.on("/status") or [b""])[-1])
    sub.close()
    states = [(d["camera"], d.get("camera_error")) for d in sub.json_on("/status") if "camera" in d]
    assert ("unavailable", "camera /dev/video0 cannot be opened. Fix: plug the camera in.") in states
    assert states[-1][0] == "ended" and ("ok", None) in states
    assert len(attempts) == 3 and 0.08 <= attempts[1] - attempts[0] and 0.18 <= attempts[2] - attempts[1]
    assert sink.stats.connects == 1 and sink.stats.disconnects == 0
    assert svc.frames_done == 3


def test_unplugged_live_camera_through_real_sources(broker, tmp_path):
    """The real source layer (RetryingSource) on a camera that is not there: reported, and SIGTERM-style stop is prompt."""
    from edgepose.sources import open_source

    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/status")
    cfg = MqttConfig(host="127.0.0.1", port=broker.port, outbox_path=str(tmp_path / "o.sqlite"))
    sink = MqttSink(cfg, DEVICE)
    svc: Service

    def frames():
        src = open_source(
            "/dev/video97",
            on_state=svc.source_state_changed,
            retry_first_open=True,
            retry_initial_s=0.1,
            retry_max_s=0.3,
        )
        svc.source = src
        return src  # frames never come; only state changes

    svc = Service(sink, frames, status_interval=60)
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    try:
        assert sub.wait_for(lambda s: any(d.get("camera") == "unavailable" for d in s.json_on("/status")), timeout=15)
    finally:
        # Stop even when the assertion fails: a live retry loop would keep the test process alive.
        t0 = time.monotonic()
        svc.stop()
        t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    sub.wait_for(lambda s: b'"offline"' in (s.on("/status") or [b""])[-1])
    sub.close()
    err = next(d["camera_error"] for d in sub.json_on("/status") if d.get("camera") == "unavailable")
    assert "video97" in err
