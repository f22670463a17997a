"""MqttSink against real Mosquitto brokers: contents, reliability (outbox), TLS, credentials, Home Assistant."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import jsonschema
import pytest

from edgepose.mqtt import payloads
from edgepose.mqtt.config import MqttConfig
from edgepose.mqtt.outbox import Outbox
from edgepose.mqtt.sink import MqttSink
from edgepose.types import ActionEvent
from tests.conftest_mqtt import BROKER_PASSWORD, BROKER_USER, frame
from tests.mosquitto import Mosquitto, Subscriber, make_certs, make_password_file
from tests.procs import free_port, wait_until

DEVICE = "shelf-pi"


def make_sink(port: int, tmp_path: Path, **kw) -> MqttSink:
    kw.setdefault("backoff_min", 0.1)
    kw.setdefault("backoff_max", 0.5)
    kw.setdefault("host", "127.0.0.1")
    cfg = MqttConfig(enabled=True, port=port, outbox_path=str(tmp_path / "outbox.sqlite"), **kw)
    return MqttSink(cfg, DEVICE, model="posenet_mobilenet_v1_075_353_481_quant")


def validate(topic: str, payload: bytes) -> dict:
    kind = topic.rsplit("/", 1)[-1]
    data = payloads.decode_poses(payload, DEVICE) if kind == "poses" else json.loads(payload)
    jsonschema.Draft202012Validator(payloads.load_schema(kind)).validate(data)
    return data


def seqs(sub: Subscriber) -> list[int]:
    return [d["seq"] for d in sub.json_on("/events")]


@pytest.mark.integration
@pytest.mark.parametrize("protocol,encoding", [("5", "json"), ("3.1.1", "binary")])
def test_every_message_matches_its_schema(broker, tmp_path, real_poses, protocol, encoding):
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/#")
    sink = make_sink(broker.port, tmp_path, protocol=protocol, encoding=encoding).start()
    assert sink.wait_connected(10), sink.last_error
    sink.state.min_interval = 0.0
    for i in range(5):
        ev = [ActionEvent(1, "wave", "start", i / 30)] if i == 2 else []
        ev += [ActionEvent(2, "fall", "instant", i / 30, confidence=0.7)] if i == 3 else []
        extra = {"camera_pose": {"position": [0.5, 1.0, 2.0], "orientation": [1.0, 0.0, 0.0, 0.0]}} if i == 4 else {}
        sink.publish_frame(frame(i, real_poses, ev, **extra))
    assert sink.close()
    assert sub.wait_for(lambda s: any(b'"offline"' in p for p in s.on("/status")))
    sub.close()
    kinds: dict[str, list[dict]] = {}
    for topic, payload, _ in sub.messages:
        kinds.setdefault(topic.rsplit("/", 1)[-1], []).append(validate(topic, payload))
    assert set(kinds) == {"poses", "events", "status", "state", "camera_pose"}
    assert [p["frame"] for p in kinds["poses"]] == [0, 1, 2, 3, 4]
    assert len(kinds["poses"][0]["people"]) == len(real_poses)
    assert [(e["seq"], e["event"]["action"]) for e in kinds["events"]] == [(1, "wave"), (2, "fall")]
    assert kinds["status"][0]["state"] == "online" and kinds["status"][-1]["state"] == "offline"
    assert kinds["status"][-1]["events_sent"] == 2 and kinds["status"][-1]["poses_sent"] == 5
    assert kinds["status"][-1]["protocol"] == protocol and kinds["status"][-1]["encoding"] == encoding
    assert kinds["state"][-1]["fall"] is True and kinds["state"][-1]["actions"] == ["wave"]
    assert kinds["state"][-1]["people"] == len(real_poses)


@pytest.mark.integration
def test_poses_go_without_a_publish_callback_events_with_one_until_their_puback(broker, tmp_path, real_poses):
    """paho builds a reason code and properties and calls on_publish for every QoS-0 pose in its network thread,
    which halved the sink's publish rate: the sink sets the callback only while events await their PUBACK."""
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/#")
    sink = make_sink(broker.port, tmp_path).start()
    assert sink.wait_connected(10), sink.last_error
    client = sink._client
    for i in range(3):
        sink.publish_frame(frame(i, real_poses))
    assert client.on_publish is None
    handed = []
    real_publish = client.publish

    def spy(topic, payload=None, qos=0, retain=False, properties=None):  # what paho's network thread would see
        if topic.endswith("/events"):
            handed.append(client.on_publish)
        return real_publish(topic, payload, qos, retain, properties)

    client.publish = spy
    sink.publish_frame(frame(3, real_poses, [ActionEvent(1, "wave", "start", 0.1)]))
    wait_until(lambda: sink.stats.events_sent == 1, 10, "the event sent")
    assert handed and all(cb is not None for cb in handed)  # set before the event was handed over
    wait_until(lambda: client.on_publish is None, 5, "the PUBACK")  # its PUBACK retired it: poses go without again
    sink.publish_frame(frame(4, real_poses))
    assert sink.close()
    assert sub.wait_for(lambda s: len(s.on("/poses")) == 5 and len(s.on("/events")) == 1)
    sub.close()


@pytest.mark.integration
def test_poses_rate_decimates(broker, tmp_path, real_poses):
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/poses")
    sink = make_sink(broker.port, tmp_path, poses_rate=10.0).start()
    assert sink.wait_connected(10)
    now = [100.0]
    sink.clock = lambda: now[0]  # frame times, not the test machine's scheduling, decide
    for i in range(30):  # 1 s at 30 FPS, with a little jitter
        now[0] = 100.0 + i / 30 + (0.002 if i % 2 else -0.002)
        sink.publish_frame(frame(i, real_poses))
    now[0] += 5.0  # a stall: the next frame goes out at once, and the pace restarts from there
    for i in range(30, 33):
        sink.publish_frame(frame(i, real_poses))
    sink.close()
    assert sub.wait_for(lambda s: len(s.on("/poses")) >= sink.stats.poses_sent)
    sub.close()
    frames = [validate(t, p)["frame"] for t, p, _ in sub.messages]
    assert frames == list(range(0, 30, 3)) + [30], frames
    assert sink.stats.poses_decimated == 33 - len(frames)


@pytest.mark.integration
def test_events_survive_broker_kill_and_restart(persistent_broker, tmp_path, real_poses):
    """QoS 1 events: none lost, none duplicated, in order, across a SIGKILLed broker."""
    b = persistent_broker
    sub = Subscriber(b.port, f"edgepose/{DEVICE}/events", client_id="dashboard", persistent=True)
    sink = make_sink(b.port, tmp_path).start()
    assert sink.wait_connected(10)
    n = 0
    for i in range(20):
        sink.publish_frame(frame(i, real_poses, [ActionEvent(1, "step", "instant", i / 30)]))
        n += 1
    assert sub.wait_for(lambda s: len(s.on("/events")) == 20)
    assert sink.drain(5)

    b.kill()
    wait_until(lambda: not sink.connected, 5, "the sink to disconnect")
    for i in range(20, 50):
        sink.publish_frame(frame(i, real_poses, [ActionEvent(1, "step", "instant", i / 30)]))
    # While the broker is down: every event is in the outbox exactly once; poses are dropped and counted.
    rows = sink.outbox.pending(limit=1000)
    assert [r.id for r in rows] == list(range(21, 51))
    assert sink.stats.poses_dropped == 30

    b.start()
    assert sub.wait_for(lambda s: len(s.on("/events")) >= 50, timeout=20), (seqs(sub), sink.last_error)
    wait_until(lambda: len(sink.outbox) == 0, 5, "an empty outbox")
    sink.close()
    time.sleep(0.3)  # a duplicate would arrive right behind
    sub.close()
    got = seqs(sub)
    # None lost, in order. (The broker itself may re-deliver a message it had persisted as not yet
    # acknowledged by the subscriber when it was killed: that is why events carry seq.)
    assert list(dict.fromkeys(got)) == list(range(1, 51)), got
    assert [d["frame"] for d in {d["seq"]: d for d in sub.json_on("/events")}.values()] == list(range(50))
    # None duplicated by the device: the broker received each event exactly once, never as a re-send.
    received = [
        ln for ln in b.log_text().splitlines() if f"Received PUBLISH from edgepose-{DEVICE}" in ln and "/events'" in ln
    ]
    assert len(received) == 50 and not any("(d1," in ln for ln in received), len(received)


@pytest.mark.integration
def test_events_survive_a_service_restart(tmp_path, real_poses):
    """Events stored while the broker is unreachable and the process dies are sent, in order, by the next process."""
    port = free_port()
    sink = make_sink(port, tmp_path).start()
    for i in range(10):
        sink.publish_frame(frame(i, real_poses, [ActionEvent(i, "wave", "start", float(i))]))
    assert wait_until(lambda: "refused the connection" in (sink.last_error or ""), 10, fail=False), sink.last_error
    assert sink.stats.poses_dropped == 10
    sink.abort()  # crash: no drain, no goodbye

    with Mosquitto(tmp_path / "b", port=port) as b:
        sub = Subscriber(b.port, f"edgepose/{DEVICE}/events")
        sink2 = make_sink(port, tmp_path).start()
        assert sink2.wait_connected(10)
        for i in range(10, 15):
            sink2.publish_frame(frame(i, real_poses, [ActionEvent(i, "wave", "start", float(i))]))
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 15)
        assert sink2.close()
        time.sleep(0.2)
        sub.close()
    assert seqs(sub) == list(range(1, 16))
    assert [d["event"]["track_id"] for d in sub.json_on("/events")] == list(range(15))
    assert len(Outbox(tmp_path / "outbox.sqlite")) == 0


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_tls_client_certificate_and_password(tls_broker, certs, tmp_path, real_poses, monkeypatch, caplog, protocol):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("EDGEPOSE_MQTT_PASSWORD", BROKER_PASSWORD)
    sub = Subscriber(
        tls_broker.port,
        f"edgepose/{DEVICE}/#",
        tls=certs,
        username=BROKER_USER,
        password=BROKER_PASSWORD,
        host="localhost",
    )
    sink = make_sink(
        tls_broker.port,
        tmp_path,
        protocol=protocol,
        username=BROKER_USER,
        password_env="EDGEPOSE_MQTT_PASSWORD",
        tls={
            "enabled": True,
            "ca_file": str(certs.ca_cert),
            "cert_file": str(certs.client_cert),
            "key_file": str(certs.client_key),
        },
        host="localhost",
    )  # the name in the server certificate
    sink.start()
    assert sink.wait_connected(10), sink.last_error
    sink.publish_frame(frame(0, real_poses, [ActionEvent(1, "wave", "start", 0.0)]))
    assert sink.close()
    assert sub.wait_for(lambda s: len(s.on("/events")) == 1 and len(s.on("/poses")) == 1)
    sub.close()
    assert "New connection from" in tls_broker.log_text() and f"u'{BROKER_USER}'" in tls_broker.log_text()
    assert BROKER_PASSWORD not in caplog.text


@pytest.mark.integration
def test_tls_with_the_wrong_ca_is_a_clear_error(tls_broker, tmp_path, certs, caplog):
    other = make_certs(tmp_path / "other-ca")
    sink = make_sink(
        tls_broker.port,
        tmp_path,
        username=BROKER_USER,
        password=BROKER_PASSWORD,
        tls={
            "enabled": True,
            "ca_file": str(other.ca_cert),
            "cert_file": str(certs.client_cert),
            "key_file": str(certs.client_key),
        },
    )
    sink.start()
    wait_until(lambda: sink.last_error is not None, 10, "an error")
    sink.abort()
    assert "TLS certificate not accepted" in sink.last_error and "mqtt.tls.ca_file" in sink.last_error
    assert BROKER_PASSWORD not in caplog.text


@pytest.mark.integration
def test_wrong_password_is_a_clear_error_with_back_off(tmp_path, caplog):
    pw = make_password_file(tmp_path / "passwd", {BROKER_USER: BROKER_PASSWORD})
    with Mosquitto(tmp_path / "b", password_file=pw) as b:
        sink = make_sink(
            b.port, tmp_path, username=BROKER_USER, password="wrong-password", backoff_min=0.2, backoff_max=1.0
        )
        t0 = time.monotonic()
        sink.start()
        time.sleep(3.0)
        failures = sink.stats.connect_failures
        sink.abort()
    elapsed = time.monotonic() - t0
    assert not sink.stats.connects
    msg = sink.last_error or ""
    assert "refused the login for user 'device1'" in msg and "check mqtt.username and the password" in msg, msg
    assert any(s in msg.lower() for s in ("not authorized", "bad user name or password")), msg
    # Back-off 0.2, 0.4, 0.8, 1, 1 ... : a handful of attempts in 3 s, not a tight loop.
    assert 2 <= failures <= 7, (failures, elapsed)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "refused the login" in r.getMessage()]
    assert len(errors) == 1 and "Retrying with back-off" in errors[0].getMessage()
    assert "wrong-password" not in caplog.text


@pytest.mark.integration
def test_home_assistant_discovery(broker, tmp_path, real_poses):
    sub = Subscriber(broker.port, ["homeassistant/#", f"edgepose/{DEVICE}/state", f"edgepose/{DEVICE}/status"])
    sink = make_sink(broker.port, tmp_path, homeassistant={"enabled": True}).start()
    assert sink.wait_connected(10)
    sink.state.min_interval = 0.0
    assert sub.wait_for(lambda s: len([t for t, _, _ in s.messages if t.endswith("/config")]) == 3)
    configs = {t: json.loads(p) for t, p, _ in sub.messages if t.endswith("/config")}
    assert set(configs) == {
        f"homeassistant/sensor/{DEVICE}/people/config",
        f"homeassistant/binary_sensor/{DEVICE}/fall/config",
        f"homeassistant/sensor/{DEVICE}/actions/config",
    }
    assert len({c["unique_id"] for c in configs.values()}) == 3
    assert all(
        c["state_topic"] == f"edgepose/{DEVICE}/state" and c["availability_topic"] == f"edgepose/{DEVICE}/status"
        for c in configs.values()
    )
    assert all(c["device"]["identifiers"] == [f"edgepose_{DEVICE}"] for c in configs.values())

    def state() -> dict:
        return json.loads(last(sub, "/state"))

    sink.publish_frame(frame(0, real_poses, [ActionEvent(1, "walk", "start", 0.0)]))
    assert sub.wait_for(lambda s: b'"walk"' in last(s, "/state"))
    assert (state()["people"], state()["fall"], state()["actions"]) == (len(real_poses), False, ["walk"])
    sink.publish_frame(frame(1, real_poses[:1], [ActionEvent(1, "fall", "instant", 0.1)]))
    assert sub.wait_for(lambda s: b'"fall":true' in last(s, "/state"))
    assert (state()["people"], state()["actions"]) == (1, ["walk"])
    sink.publish_frame(frame(2, [], []))  # everyone left: their actions end with them
    assert sub.wait_for(lambda s: json.loads(last(s, "/state") or b"{}").get("people") == 0)
    assert state()["actions"] == [] and state()["fall"] is True  # the fall is held for fall_hold seconds

    # Home Assistant restarts: its birth message makes the device re-announce itself (retained).
    n_before = len([t for t, _, _ in sub.messages if t.endswith("/config")])
    sub.client.publish("homeassistant/status", "online")
    assert sub.wait_for(lambda s: len([t for t, _, _ in s.messages if t.endswith("/config")]) == n_before + 3)
    sink.close()
    assert sub.wait_for(lambda s: b'"offline"' in last(s, "/status"))
    sub.close()
    late = Subscriber(broker.port, "homeassistant/#")
    assert late.wait_for(lambda s: len(s.messages) == 3) and all(retain for _, _, retain in late.messages)
    late.close()


def test_home_assistant_templates_render_the_state():
    """The discovery templates, rendered with Jinja2 (what Home Assistant runs) on real payloads."""
    jinja2 = pytest.importorskip("jinja2")
    from edgepose.mqtt import homeassistant

    cfg = MqttConfig(homeassistant={"enabled": True})
    msgs = {t.split("/")[-2]: c for t, c in homeassistant.discovery_messages(cfg, "hall.1", "0.1.0", "m")}
    assert set(msgs) == {"people", "fall", "actions"} and all(
        "hall_1" in t for t in [c["unique_id"] for c in msgs.values()]
    )
    env = jinja2.Environment()

    def render(kind: str, key: str, payload: dict) -> str:
        return env.from_string(msgs[kind][key]).render(value_json=json.loads(payloads.dumps(payload)))

    busy = payloads.state_payload("hall.1", 1.0, 3, True, ["waving", "squat"])
    idle = payloads.state_payload("hall.1", 2.0, 0, False, [])
    assert render("people", "value_template", busy) == "3" and render("people", "value_template", idle) == "0"
    assert render("fall", "value_template", busy) == "ON" and render("fall", "value_template", idle) == "OFF"
    assert (
        render("actions", "value_template", busy) == "squat, waving"
        and render("actions", "value_template", idle) == "none"
    )
    for state in ("online", "offline"):
        status = payloads.status_payload("hall.1", state, 1.0)
        assert (
            render("people", "availability_template", status)
            == msgs["people"][f"payload_{'available' if state == 'online' else 'not_available'}"]
        )


def last(sub: Subscriber, suffix: str) -> bytes:
    msgs = sub.on(suffix)
    return msgs[-1] if msgs else b""


def test_bad_tls_files_and_missing_password_env_fail_at_start(tmp_path, monkeypatch):
    from edgepose.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mqtt.tls.ca_file .*nope.crt does not exist"):
        make_sink(1883, tmp_path, tls={"enabled": True, "ca_file": str(tmp_path / "nope.crt")})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load the TLS files"):
        make_sink(1883, tmp_path, tls={"enabled": True, "ca_file": str(garbage)})
    monkeypatch.delenv("EP_MISSING_PW", raising=False)
    with pytest.raises(ConfigError, match="EP_MISSING_PW, which is not set"):
        make_sink(1883, tmp_path, username="u", password_env="EP_MISSING_PW")
