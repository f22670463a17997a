"""A broker that announces a huge packet or misbehaves (issue 21, class 6).

:class:`FakeBroker` is a few sockets on 127.0.0.1 speaking just enough MQTT to misbehave in one chosen way;
after ``bad_connections`` it can hand each new connection to a real Mosquitto (a byte pipe), so a test sees the
service come back and deliver what it kept. The clients are the real commands (``edgepose serve``, ``listen``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from edgepose.mqtt.client import MAX_INCOMING_PACKET, connect_kwargs
from edgepose.mqtt.config import MqttConfig
from tests.conftest import SHARED
from tests.conftest_mqtt import TEST_MODEL, write_recording
from tests.conftest_web import get_json
from tests.mosquitto import Mosquitto, Subscriber, free_port
from tests.procs import edgepose, edgepose_process, finish, wait_until

VIDEO = SHARED / "video" / "openpose_video.avi"
DEVICE = "hostile-broker-pi"
CONNACK_V5 = b"\x20\x03\x00\x00\x00"  # session present 0, reason 0, no properties
CONNACK_V311 = b"\x20\x02\x00\x00"
HUGE = b"\x30\xff\xff\xff\x7f"  # PUBLISH, remaining length 268435455 (the most MQTT can say)


def read_packet(s: socket.socket) -> bytes:
    """One MQTT packet from the client (the CONNECT)."""
    head = s.recv(1)
    if not head:
        return b""
    mult, n = 1, 0
    while True:
        b = s.recv(1)[0]
        n += (b & 127) * mult
        mult *= 128
        if not b & 128:
            break
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    return head + body


def varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (128 if n else 0)])
        if not n:
            return out


def publish(topic: bytes, payload: bytes, v5: bool) -> bytes:
    """A QoS-0 PUBLISH packet (MQTT 5: with an empty property list)."""
    body = len(topic).to_bytes(2, "big") + topic + (b"\x00" if v5 else b"") + payload
    return b"\x30" + varint(len(body)) + body


class FakeBroker:
    """Accepts MQTT clients and misbehaves as ``mode`` says, for the first ``bad_connections`` (then pipes to ``upstream``)."""

    def __init__(self, mode: str, bad_connections: int = 1 << 30, upstream: int | None = None):
        self.mode, self.bad, self.upstream = mode, bad_connections, upstream
        self.payloads: list[bytes] = []
        self.port = free_port()
        self.connections = 0
        self.sent = 0  # bytes of the huge packet the client took
        self._srv = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            target = self._pipe if self.connections > self.bad else self._misbehave
            threading.Thread(target=target, args=(conn,), daemon=True).start()

    def _misbehave(self, c: socket.socket) -> None:
        c.settimeout(30)
        try:
            connect = read_packet(c)
            v5 = (
                len(connect) > 7 and connect[7] == 5
            )  # protocol level after the "MQTT" name (the packet less its length bytes)
            connack = CONNACK_V5 if v5 else CONNACK_V311
            if self.mode == "silent":  # never answers CONNECT
                self._stop.wait(60)
            elif self.mode == "garbage":
                c.sendall(os.urandom(4096))
            elif self.mode == "connack-garbage":
                c.sendall(connack + b"\xff" * 64 + os.urandom(4096))
            elif self.mode == "bad-length":  # a remaining length of five bytes (MQTT allows four)
                c.sendall(connack + b"\x30\xff\xff\xff\xff\x7f")
            elif (
                self.mode == "bad-topic"
            ):  # a PUBLISH on a topic that is not UTF-8 (Mosquitto would refuse it), then good ones
                c.sendall(connack + publish(b"edgepose/x/\xff\xfe", b"{}", v5))
                for payload in self.payloads:
                    c.sendall(publish(b"edgepose/x/poses", payload, v5))
            elif self.mode == "huge":
                c.sendall(connack + HUGE + b"\x00\x05hello")
                chunk = b"\0" * 65536
                while not self._stop.is_set() and self.sent < 256 << 20:
                    c.sendall(chunk)  # as fast as the client reads: a client that reads it all holds 256 MB
                    self.sent += len(chunk)
            self._stop.wait(5)
        except OSError:
            pass
        finally:
            c.close()

    def _pipe(self, c: socket.socket) -> None:
        assert self.upstream is not None
        up = socket.create_connection(("127.0.0.1", self.upstream))

        def copy(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=copy, args=(c, up), daemon=True).start()
        copy(up, c)

    def close(self) -> None:
        self._stop.set()
        self._srv.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def device_config(path: Path, mqtt_port: int, http_port: int, protocol: str = "5") -> Path:
    path.write_text(
        "\n".join(
            [
                f'device_id = "{DEVICE}"',
                "[model]",
                f'path = "{TEST_MODEL}"',
                "[source]",
                f'uri = "{VIDEO}"',
                "loop = true",
                "[mqtt]",
                "enabled = true",
                'host = "127.0.0.1"',
                f"port = {mqtt_port}",
                f'protocol = "{protocol}"',
                f'outbox_path = "{path.parent / "outbox.sqlite"}"',
                "backoff_min = 0.5",
                "backoff_max = 2.0",
                "status_interval = 1.0",
                "[actions]",
                "enabled = true",
                "[http]",
                "enabled = true",
                f"port = {http_port}",
            ]
        )
        + "\n"
    )
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "real-broker").start()
    yield b
    b.stop()


def test_connect_announces_the_packet_limit_under_mqtt5():
    props = connect_kwargs(MqttConfig(protocol="5"))["properties"]
    assert props.MaximumPacketSize == MAX_INCOMING_PACKET
    assert (
        connect_kwargs(MqttConfig(protocol="3.1.1")) == {}
    )  # 3.1.1 has no such property: the client enforces it alone


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_serve_stays_bounded_against_a_huge_packet_and_delivers_its_outbox_after(tmp_path, mosquitto, protocol):
    """CONNACK, then a PUBLISH announcing 256 MB: serve drops the connection in one line, stays small, reconnects,
    and once a sane broker answers, the events it kept arrive, every seq once and in order."""
    fake = FakeBroker("huge", bad_connections=3, upstream=mosquitto.port)
    http_port = free_port()
    sub = Subscriber(mosquitto.port, f"edgepose/{DEVICE}/events")
    proc = edgepose_process(
        "serve",
        "--config",
        str(device_config(tmp_path / "d.toml", fake.port, http_port, protocol)),
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{http_port}/"
    peak = 0.0
    try:

        def bad_rounds_done() -> bool:
            nonlocal peak
            peak = max(peak, rss_mb(proc.pid))
            return fake.connections > 3

        wait_until(bad_rounds_done, 120, "three refused connections and a fourth attempt")
        assert fake.sent < 64 << 20, fake.sent  # it stopped reading: it did not take the 256 MB
        st = wait_until(
            lambda: (s := get_json(url + "api/status"))["mqtt"]["connected"] and s, 60, "connected through to Mosquitto"
        )
        assert st["mqtt"]["broker"] == f"127.0.0.1:{fake.port}"
        wait_until(lambda: len(sub.on("events")) >= 3, 120, "events delivered")
        peak = max(peak, rss_mb(proc.pid))
    finally:
        code, err = finish(proc, terminate=True)
        sub.close()
        fake.close()
    print(
        f"\nserve against a 256 MB PUBLISH (MQTT {protocol}): peak RSS {peak:.0f} MB, the broker got {fake.sent >> 20} MB in"
    )
    assert peak < 600, peak  # the model and video take ~300 MB here; 256 MB more would show
    lines = [ln for ln in err.splitlines() if "announced a packet of 268435455 bytes" in ln]
    assert len(lines) == 1, err[-3000:]  # one line, not one per attempt
    assert "Traceback" not in err, err[-3000:]
    seqs = [json.loads(p)["seq"] for p in sub.on("events")]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1, seqs[:20]  # the outbox kept them from the first


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["huge", "garbage", "connack-garbage", "bad-length", "silent"])
def test_listen_against_a_misbehaving_broker_says_so_and_stays_bounded(tmp_path, mode):
    fake = FakeBroker(mode)
    proc = edgepose_process(
        "listen",
        "--host",
        "127.0.0.1",
        "--port",
        str(fake.port),
        "--device",
        "x",
        "--jsonl",
        str(tmp_path / "r.jsonl"),
        "--timeout",
        "12",
        "--connect-timeout",
        "12",
    )
    peak = 0.0
    try:
        while proc.poll() is None:
            peak = max(peak, rss_mb(proc.pid))
            time.sleep(0.1)
    finally:
        code, err = finish(proc, timeout=60)
        fake.close()
    assert "Traceback" not in err, err[-3000:]
    assert peak < 200, peak
    # It kept retrying (a silent broker holds the one attempt until the connect timeout ends it).
    assert fake.connections >= (1 if mode == "silent" else 2), (mode, fake.connections, err[-2000:])
    assert fake.sent < 64 << 20
    if mode == "huge":
        assert code == 0 and err.count("announced a packet of 268435455 bytes") == 1, err[-2000:]
    elif mode in ("garbage", "silent"):
        # No CONNACK ever: one error line at the end, with its fix.
        assert code != 0 and err.strip().splitlines()[-1].startswith(
            "edgepose listen: error: MQTT broker 127.0.0.1:"
        ), err[-2000:]
        assert "Fix: " in err.strip().splitlines()[-1]
    assert len(err.strip().splitlines()) <= 6, err[-3000:]


@pytest.mark.integration
def test_a_second_serve_with_the_same_device_id_is_named_once_and_slowed(tmp_path, mosquitto, real_poses):
    """Two services with one device_id kick each other off the broker (one client id). Each says so in one line and
    retries only every backoff_max: they swap at most that often, not every backoff_min (was: every 2 s, forever)."""
    from tests.test_mqtt_faults import DEVICE as TWIN
    from tests.test_mqtt_faults import write_config

    rec = write_recording(tmp_path / "rec.jsonl", real_poses, n=50)
    status = Subscriber(mosquitto.port, f"edgepose/{TWIN}/status")
    procs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        cfg = write_config(tmp_path / name / "device.toml", mosquitto.port, backoff_min=0.2, backoff_max=4.0)
        procs.append(
            edgepose_process(
                "serve",
                "--config",
                str(cfg),
                "--replay",
                str(rec),
                "--replay-loop",
                "--replay-fps",
                "10",
                stdout=subprocess.DEVNULL,
            )
        )
    try:
        connects = lambda: mosquitto.log_text().count(f"as edgepose-{TWIN}")  # noqa: E731
        wait_until(lambda: connects() >= 2 * 3 + 1, 60, "the twins to kick each other off a few times")
        t0, n0 = time.monotonic(), connects()
        wait_until(lambda: time.monotonic() - t0 > 16, 20, "16 s of twins")
        swaps = connects() - n0
    finally:
        errs = [finish(p, terminate=True)[1] for p in procs]
        status.close()
    print(f"\ntwo serves with one device_id: {swaps} connections in 16 s after both said so")
    assert swaps <= 2 * (16 / 4.0) + 2, swaps  # at most one reconnect per backoff_max each (at backoff_min 0.2: ~80)
    for err in errs:
        said = [ln for ln in err.splitlines() if "another client most likely uses its client id" in ln]
        assert (
            len(said) == 1
            and f"device_id = '{TWIN}'" in said[0]
            and "Fix: give each device its own device_id" in said[0]
        ), err[-2000:]
        assert "Traceback" not in err


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_listen_survives_a_topic_that_is_not_utf8(tmp_path, protocol):
    """paho raises when the callback reads such a topic: listen names it in one line and records on."""
    from tests.test_listen_hostile import GOOD_POSES

    fake = FakeBroker("bad-topic")
    fake.payloads = [json.dumps({**GOOD_POSES, "device": "x", "frame": i}).encode() for i in range(3)]
    cfg = tmp_path / "l.toml"
    cfg.write_text(f'[mqtt]\nprotocol = "{protocol}"\n')
    out = tmp_path / "r.jsonl"
    try:
        proc = edgepose(
            "listen",
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(fake.port),
            "--device",
            "x",
            "--jsonl",
            str(out),
            "--frames",
            "3",
            "--timeout",
            "30",
            timeout=90,
        )
    finally:
        fake.close()
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert [json.loads(line)["frame"] for line in out.read_text().splitlines()] == [0, 1, 2]
    assert (
        "edgepose listen: dropped 1 malformed message(s)" in proc.stderr
        and "edgepose/x/\\xff\\xfe: its topic is not UTF-8" in proc.stderr
    ), proc.stderr
