"""``edgepose listen`` against real Mosquitto brokers: printing, recording frame records, and its errors."""

from __future__ import annotations

import json
import subprocess
import time

import jsonschema
import pytest

from edgepose.cli import build_parser
from edgepose.mqtt import payloads
from edgepose.mqtt.config import MqttConfig
from edgepose.mqtt.sink import MqttSink
from edgepose.service.replay import read_records
from edgepose.sinks.jsonl import JsonlSink
from edgepose.sinks.recorder import MqttRecorder
from edgepose.types import ActionEvent, FrameResult
from tests.conftest_mqtt import check_schema, frame
from tests.mosquitto import Mosquitto, make_password_file
from tests.procs import edgepose, edgepose_process, finish, free_port

DEVICE = "shelf-pi"


def listen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return edgepose("listen", *args, timeout=60, env=env)


@pytest.mark.integration
@pytest.mark.parametrize(
    "encoding,option", [("json", "--jsonl"), ("binary", "--record")]
)  # --record: the old name still works
def test_listen_records_frame_records(broker, tmp_path, real_poses, encoding, option):
    out = tmp_path / "rec.jsonl"
    proc = edgepose_process(
        "-v",
        "listen",
        "--port",
        str(broker.port),
        "--host",
        "127.0.0.1",
        "--device",
        DEVICE,
        option,
        str(out),
        "--frames",
        "20",
        "--timeout",
        "60",
    )
    broker.wait_subscribed(f"edgepose-listen-{DEVICE}", proc)
    cfg = MqttConfig(host="127.0.0.1", port=broker.port, outbox_path=str(tmp_path / "o.sqlite"), encoding=encoding)
    sink = MqttSink(cfg, DEVICE).start()
    assert sink.wait_connected(10)
    sent = []
    for i in range(20):
        ev = [ActionEvent(2, "squat", "count", i / 30, count=i // 5)] if i % 5 == 4 else []
        fr = frame(i, real_poses, ev)
        sent.append(fr)
        sink.publish_frame(fr)
        time.sleep(0.01)
    sink.close()
    code, err = finish(proc)
    assert code == 0, err
    # The closing line is plain output, not a log WARNING.
    assert f"edgepose listen: recorded 20 frame(s) to {out}" in err and "WARNING" not in err, err
    records = read_records(out)
    assert [r["frame"] for r in records] == list(range(20))
    for r in records:
        jsonschema.Draft202012Validator(payloads.load_schema("frame")).validate(r)
    events = [(r["frame"], e["count"]) for r in records for e in r.get("events", [])]
    assert events == [(4, 0), (9, 1), (14, 2), (19, 3)]
    tol = 0.13 if encoding == "binary" else 0.051
    for r, fr in zip(records, sent):
        back = FrameResult.from_dict(r)
        assert len(back.poses) == len(fr.poses)
        for p, q in zip(back.poses, fr.poses):
            assert p.track_id == q.track_id
            assert abs(p.keypoints - q.keypoints).max() <= tol


@pytest.mark.integration
@pytest.mark.parametrize("prefix", ["edgepose/{device_id}", "site/{device_id}/pose"])
def test_listen_prints_decoded_messages(broker, tmp_path, real_poses, prefix):
    """`--device +` finds each device id where the config's topic_prefix puts it: with `site/{device_id}/pose`, not in
    the level before the kind (`pose`, which made every message look as if it spoke for another device)."""
    conf = tmp_path / "listen.toml"
    conf.write_text(f'[mqtt]\ntopic_prefix = "{prefix}"\n')
    proc = edgepose_process(
        "listen",
        "--config",
        str(conf),
        "--port",
        str(broker.port),
        "--host",
        "127.0.0.1",
        "--device",
        "+",
        "--frames",
        "2",
        "--timeout",
        "60",
    )
    broker.wait_subscribed("edgepose-listen", proc)
    cfg = MqttConfig(
        host="127.0.0.1",
        port=broker.port,
        outbox_path=str(tmp_path / "o.sqlite"),
        encoding="binary",
        topic_prefix=prefix,
    )
    sink = MqttSink(cfg, DEVICE).start()
    assert sink.wait_connected(10)
    sink.publish_frame(frame(0, real_poses))
    sink.publish_frame(frame(1, real_poses))
    out, err = proc.communicate(timeout=30)
    sink.close()
    assert proc.returncode == 0, err
    assert "dropped" not in err, err
    topics = prefix.replace("{device_id}", DEVICE)
    lines = [ln.split(" ", 1) for ln in out.splitlines()]
    poses = [json.loads(body) for topic, body in lines if topic == f"{topics}/poses"]
    assert [p["frame"] for p in poses] == [0, 1] and poses[0]["device"] == DEVICE
    assert any(topic == f"{topics}/status" and json.loads(body)["state"] == "online" for topic, body in lines), out
    check_schema("x/poses", json.dumps(poses[0]).encode(), DEVICE)


def test_recorder_attaches_late_early_and_duplicate_events(tmp_path):
    out = tmp_path / "rec.jsonl"
    r = MqttRecorder(JsonlSink(out), hold=3)

    def ev(seq, f):
        return {
            "v": 1,
            "device": DEVICE,
            "seq": seq,
            "frame": f,
            "ts": 0.0,
            "event": {"track_id": 1, "action": "wave", "kind": "instant", "start": 0.0, "end": None, "confidence": 1.0},
        }

    def poses(f):
        return {"v": 1, "device": DEVICE, "frame": f, "ts": f / 30, "width": 4, "height": 3, "people": []}

    r.add_event(ev(1, 0))  # before its frame arrived
    for f in (0, 1, 2, 4, 5):  # frame 3 decimated away
        r.add_poses(poses(f))
    r.add_event(ev(2, 2))  # two frames late, still held
    r.add_event(ev(3, 3))  # a decimated frame: goes to the next recorded one
    r.add_event(ev(3, 3))  # at-least-once duplicate
    r.add_event(ev(4, 9))  # a frame that never comes
    r.close()
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["frame"] for rec in recs] == [0, 1, 2, 4, 5]
    assert [(rec["frame"], len(rec.get("events", []))) for rec in recs] == [(0, 1), (1, 0), (2, 1), (4, 1), (5, 1)]
    assert all("device" not in rec and "_events" not in rec for rec in recs)


def test_help_names_one_recording_option():
    sub = build_parser(only="listen")._subparsers._group_actions[0].choices["listen"]  # type: ignore[union-attr]
    text = sub.format_help()
    assert "--jsonl FILE" in text and "--record" not in text


@pytest.mark.integration
def test_no_broker_is_one_line_error_and_non_zero_exit(tmp_path):
    port = free_port()  # nothing listens there
    out = tmp_path / "rec.jsonl"
    t0 = time.monotonic()
    res = listen("--host", "127.0.0.1", "--port", str(port), "--jsonl", str(out), "--connect-timeout", "3")
    assert res.returncode == 2, res.stderr
    assert time.monotonic() - t0 < 30
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("edgepose listen: error: ") and f"127.0.0.1:{port}" in line, line
    assert "refused the connection" in line and "not connected after" in line and "Fix: " in line, line
    assert "Traceback" not in res.stderr and not out.exists()  # no empty recording left behind


@pytest.mark.integration
def test_timeout_before_any_connection_is_an_error_too():
    # --timeout shorter than --connect-timeout: still never connected, still an error.
    res = listen("--host", "no-such-broker.invalid", "--timeout", "1")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "no-such-broker.invalid" in res.stderr and "Fix: " in res.stderr


@pytest.mark.integration
def test_refused_login_is_one_line_naming_the_user_and_the_fix(tmp_path):
    pw = make_password_file(tmp_path / "passwd", {"device1": "s3cret-Pa55"})
    b = Mosquitto(tmp_path / "broker", password_file=pw).start()
    try:
        res = listen(
            "--host",
            "127.0.0.1",
            "--port",
            str(b.port),
            "--username",
            "device1",
            "--password-env",
            "C2_WRONG_PW",
            "--connect-timeout",
            "2",
            env={"C2_WRONG_PW": "not-the-password"},
        )
    finally:
        b.stop()
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"MQTT broker 127.0.0.1:{b.port} refused the login for user 'device1'" in res.stderr, res.stderr
    assert "Fix: check mqtt.username and the password" in res.stderr
