"""``edgepose listen --jsonl`` fed by a hostile publisher on a real Mosquitto (issue 21, class 3).

The corpus (:data:`HOSTILE`) is shared with the fleet page's tests (tests/test_web_hostile.py).
"""

from __future__ import annotations

import json
import re
import time

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgepose.mqtt import payloads
from edgepose.mqtt.client import MAX_INCOMING_PACKET
from edgepose.mqtt.config import MqttConfig
from edgepose.mqtt.inbound import MAX_PAYLOAD, BadMessage, Rejects, parse
from edgepose.mqtt.sink import MqttSink
from edgepose.service.replay import read_records
from edgepose.types import KEYPOINT_NAMES, ActionEvent
from tests.conftest_mqtt import frame
from tests.procs import edgepose_process, finish

DEVICE = "shelf-pi"
GOOD_EVENT = {
    "v": 1,
    "device": DEVICE,
    "seq": 7,
    "frame": 3,
    "ts": 1.5,
    "event": {
        "track_id": 1,
        "action": "squat",
        "kind": "count",
        "start": 1.0,
        "end": None,
        "confidence": 0.9,
        "count": 2,
    },
}
GOOD_PERSON = {"score": 0.8, "id": 1, "keypoints": {n: [10.0, 20.0, 0.5] for n in KEYPOINT_NAMES}}
GOOD_POSES = {"v": 1, "device": DEVICE, "frame": 3, "ts": 1.5, "width": 640, "height": 480, "people": [GOOD_PERSON]}
GOOD_STATUS = {"v": 1, "device": DEVICE, "state": "online", "ts": 2.0, "fps": 9.5, "model": "m", "heartbeat": 1.0}
GOOD_STATE = {"v": 1, "device": DEVICE, "ts": 2.0, "people": 1, "fall": False, "actions": ["squat"]}


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def edit(base: dict, **kw) -> bytes:
    d = json.loads(json.dumps(base))
    for k, v in kw.items():
        if v is ...:
            d.pop(k, None)
        else:
            d[k] = v
    return j(d)


def edit_event(**kw) -> bytes:
    d = json.loads(json.dumps(GOOD_EVENT))
    d["event"].update(kw)
    return j(d)


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJ = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
#: (kind, payload, what): each must be dropped with a reason, by listen and by the fleet page.
HOSTILE: list[tuple[str, bytes, str]] = [
    ("events", DEEP, "deep array"),
    ("events", DEEP_OBJ, "deep object"),
    ("events", b'{"seq":' + b"[" * 5000 + b"]" * 5000 + b"}", "deep seq"),
    ("events", edit(GOOD_EVENT, seq=...), "no seq"),
    ("events", edit(GOOD_EVENT, seq="12"), "string seq"),
    ("events", edit(GOOD_EVENT, seq=None), "null seq"),
    ("events", edit(GOOD_EVENT, seq=True), "bool seq"),
    ("events", edit(GOOD_EVENT, seq=1.5), "float seq"),
    ("events", edit(GOOD_EVENT, seq=-4), "negative seq"),
    ("events", j(GOOD_EVENT).replace(b'"seq": 7', b'"seq": NaN'), "NaN seq"),
    ("events", j(GOOD_EVENT).replace(b'"seq": 7', b'"seq": 1e999'), "overflowing seq"),
    ("events", j(GOOD_EVENT).replace(b'"seq": 7', b'"seq": ' + b"9" * 5000), "5000-digit seq"),
    ("events", j(GOOD_EVENT).replace(b'"ts": 1.5', b'"ts": Infinity'), "Infinity ts"),
    ("events", edit(GOOD_EVENT, device="kitchen"), "names another device"),
    ("events", edit_event(action="<img src=x onerror=alert(1)>" * 20), "long html action"),
    ("events", edit_event(kind="<script>"), "bad kind"),
    ("events", edit_event(action=""), "empty action"),
    ("events", edit_event(action=["x"]), "list action"),
    ("events", j(GOOD_EVENT).replace(b'"squat"', b'"\\ud800"'), "lone surrogate"),
    ("events", edit_event(extra=json.loads("[" * 50 + "]" * 50)), "extra not an object"),
    ("events", edit_event(extra={"a": json.loads("[" * 50 + "]" * 50)}), "deep extra"),
    ("events", edit(GOOD_EVENT, event="x"), "event a string"),
    ("events", edit_event(extra={"blob": "x" * 500_000}), "half-MB extra"),
    ("events", edit(GOOD_EVENT, v=2), "future version"),
    ("events", j(GOOD_EVENT).replace(b"squat", b"squ\xffat"), "invalid UTF-8"),
    ("events", b"\xff\xfe\x00garbage", "binary garbage"),
    ("events", b"NaN", "bare NaN"),
    ("events", b"[]", "array"),
    ("events", b'"event"', "string"),
    ("events", b"null", "null"),
    ("events", b'{"seq": 1', "truncated"),
    ("events", b'{"seq":1,"pad":"' + b"x" * (MAX_PAYLOAD + 10) + b'"}', "over 1 MiB"),
    ("poses", DEEP, "deep poses"),
    ("poses", edit(GOOD_POSES, frame=...), "no frame"),
    ("poses", edit(GOOD_POSES, frame=-1), "negative frame"),
    ("poses", edit(GOOD_POSES, frame="3"), "string frame"),
    ("poses", edit(GOOD_POSES, width=0), "zero width"),
    ("poses", edit(GOOD_POSES, people={"a": 1}), "people an object"),
    ("poses", edit(GOOD_POSES, people=[GOOD_PERSON] * 1000), "1000 people"),
    ("poses", edit(GOOD_POSES, people=[{"score": 0.5}]), "person without keypoints"),
    ("poses", edit(GOOD_POSES, people=[{**GOOD_PERSON, "keypoints": {"nose": [1, 2, 3]}}]), "missing keypoints"),
    ("poses", j(GOOD_POSES).replace(b"[10.0, 20.0, 0.5]", b"[NaN, 20.0, 0.5]", 1), "NaN keypoint"),
    ("poses", edit(GOOD_POSES, device="kitchen"), "poses of another device"),
    ("poses", b"EP" + b"\x01" * 10, "short binary"),
    ("poses", b"EP" + b"\x00" * 200_000, "bad binary"),
    ("poses", b"x" * (3 << 20), "3 MB"),
    ("poses", b'{"frame": 1, "people": [', "truncated poses"),
    ("status", j(GOOD_STATUS).replace(b'"fps": 9.5', b'"fps": NaN'), "NaN fps"),
    ("status", j(GOOD_STATUS).replace(b'"fps": 9.5', b'"fps": -Infinity'), "-Infinity fps"),
    ("status", edit(GOOD_STATUS, state="hacked"), "bad state"),
    ("status", edit(GOOD_STATUS, device="kitchen"), "forged online for another device"),
    ("status", edit(GOOD_STATUS, model="m" * 10_000), "10000-char model"),
    ("status", edit(GOOD_STATUS, camera="<b>x</b>"), "bad camera"),
    ("status", edit(GOOD_STATUS, frames="many"), "string frames"),
    ("state", edit(GOOD_STATE, actions="squat"), "actions a string"),
    ("state", edit(GOOD_STATE, actions=[{"x": 1}]), "actions of objects"),
    ("state", edit(GOOD_STATE, fall="yes"), "fall a string"),
    ("state", edit(GOOD_STATE, actions=["a"] * 1000), "1000 actions"),
]

#: Well-formed but for a field no schema has: accepted with that field dropped (the old fleet log let it rename the device).
DEFUSED: list[tuple[str, bytes, str]] = [
    ("events", edit_event(device="kitchen", action="wave"), "event names another device"),
    ("events", edit(GOOD_EVENT, seq=8, frame=None, script="<script>alert(1)</script>"), "extra top-level field"),
    ("status", edit(GOOD_STATUS, html="<img src=x onerror=alert(1)>"), "extra status field"),
]


@pytest.mark.parametrize("kind,payload,what", DEFUSED, ids=[w for _, _, w in DEFUSED])
def test_unknown_fields_are_dropped(kind, payload, what):
    out = parse(kind, payload, DEVICE)
    assert out is not None and out["device"] == DEVICE
    text = json.dumps(out)
    assert "kitchen" not in text and "<" not in text


@pytest.mark.parametrize("kind,payload,what", HOSTILE, ids=[w for _, _, w in HOSTILE])
def test_every_hostile_payload_is_refused_with_a_reason(kind, payload, what):
    t0 = time.perf_counter()
    with pytest.raises(BadMessage) as e:
        parse(kind, payload, DEVICE)
    assert 3 < len(str(e.value)) < 200 and "\n" not in str(e.value)
    assert time.perf_counter() - t0 < 1.0  # no payload is expensive to refuse


@pytest.mark.parametrize(
    "kind,good", [("events", GOOD_EVENT), ("poses", GOOD_POSES), ("status", GOOD_STATUS), ("state", GOOD_STATE)]
)
def test_well_formed_payloads_pass_and_match_their_schema(kind, good):
    out = parse(kind, j(good), DEVICE)
    assert out == good
    jsonschema.Draft202012Validator(payloads.load_schema(kind)).validate(out)
    # Unknown fields are dropped, not carried on (nothing injected); a missing device is the topic's.
    assert parse(kind, edit(good, injected="<script>", device=...), DEVICE) == good
    assert parse(kind, b"", DEVICE) is None  # a cleared retained message


def test_what_the_device_publishes_passes(real_poses):
    from edgepose.mqtt.payloads import PosesEncoder, event_payload, state_payload, status_payload

    fr = frame(4, real_poses)
    for enc in ("json", "binary"):
        out = parse("poses", PosesEncoder(enc, DEVICE)(fr), DEVICE)
        assert out is not None and out["frame"] == 4 and len(out["people"]) == len(real_poses)
    ev = ActionEvent(2, "squat", "count", 0.5, count=3)
    assert parse("events", payloads.dumps(event_payload(ev, DEVICE, 5, 4, 0.5)), DEVICE)["event"]["count"] == 3
    assert (
        parse("status", payloads.dumps(status_payload(DEVICE, "online", 1.0, fps=3.0, heartbeat=30.0)), DEVICE)["fps"]
        == 3.0
    )
    assert parse("state", payloads.dumps(state_payload(DEVICE, 1.0, 2, True, ["fall"])), DEVICE)["fall"] is True


def test_a_flood_of_bad_messages_is_one_line_per_problem():
    r = Rejects("x")
    lines = [r.note("edgepose/d/events", "`seq` is missing") for _ in range(1000)]
    assert sum(line is not None for line in lines) == 1 and r.total == 1000
    assert r.note("edgepose/d/events", "not JSON (x)") is not None  # another problem: its own line


def hostile_client(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-publisher")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


@pytest.mark.integration
def test_listen_keeps_recording_through_hostile_messages(broker, tmp_path, real_poses):
    out = tmp_path / "rec.jsonl"
    proc = edgepose_process(
        "listen",
        "--port",
        str(broker.port),
        "--host",
        "127.0.0.1",
        "--device",
        DEVICE,
        "--jsonl",
        str(out),
        "--frames",
        "20",
        "--timeout",
        "90",
    )
    broker.wait_subscribed(f"edgepose-listen-{DEVICE}", proc)
    bad = hostile_client(broker.port)
    sink = MqttSink(
        MqttConfig(host="127.0.0.1", port=broker.port, outbox_path=str(tmp_path / "o.sqlite")), DEVICE
    ).start()
    try:
        assert sink.wait_connected(10)
        topic = f"edgepose/{DEVICE}/"
        for kind, payload, _ in HOSTILE:  # before any real frame: the known bug stopped recording on the first of these
            bad.publish(topic + kind, payload, qos=1).wait_for_publish(10)
        for i in range(20):
            ev = [ActionEvent(2, "squat", "count", i / 30, count=i // 5)] if i % 5 == 4 else []
            sink.publish_frame(frame(i, real_poses, ev))
            kind, payload, _ = HOSTILE[i % len(HOSTILE)]
            bad.publish(topic + kind, payload, qos=1)  # and between them
            time.sleep(0.02)
    finally:
        sink.close()
        bad.disconnect()
        bad.loop_stop()
    code, err = finish(proc)
    assert code == 0, err
    assert "Traceback" not in err, err[-3000:]
    records = read_records(out)
    assert [r["frame"] for r in records] == list(range(20))  # nothing lost
    for r in records:
        jsonschema.Draft202012Validator(payloads.load_schema("frame")).validate(r)  # nothing injected
    assert [(r["frame"], e["count"]) for r in records for e in r.get("events", [])] == [
        (4, 0),
        (9, 1),
        (14, 2),
        (19, 3),
    ]
    text = out.read_text()
    assert "kitchen" not in text and "script" not in text and "NaN" not in text and "Infinity" not in text
    m = re.search(r"edgepose listen: dropped (\d+) malformed message\(s\); the first: ", err)
    # The broker keeps back what is over the packet size listen announces (MQTT 5); the last few may come after the 20th frame.
    delivered = [h for h in HOSTILE if len(h[1]) < MAX_INCOMING_PACKET - 1000]
    assert len(delivered) < len(HOSTILE)
    assert m and len(delivered) <= int(m[1]) <= len(HOSTILE) + 20, err[-2000:]
    warnings = [ln for ln in err.splitlines() if "dropped a message on" in ln]
    assert 0 < len(warnings) < len(HOSTILE) and all(
        len(w) < 600 for w in warnings
    )  # one line per problem, not per message


def test_the_recorder_stays_bounded_under_bogus_frames_and_seqs(tmp_path):
    """Well-formed events no check can refuse: far-future frames and millions of seqs. Memory stays capped."""
    from edgepose.sinks import recorder as rec_mod
    from edgepose.sinks.jsonl import JsonlSink

    r = rec_mod.MqttRecorder(JsonlSink(tmp_path / "r.jsonl", append=True))
    ev = json.loads(j(GOOD_EVENT))
    for seq in range(1, rec_mod.MAX_EARLY + 501):
        r.add_event({**ev, "seq": seq, "frame": 10**12 + seq})
    assert len(r.early) == rec_mod.MAX_EARLY and r.dropped_early == 500
    r.add_poses(parse("poses", j(GOOD_POSES), DEVICE))
    for seq in range(1, 2 * rec_mod.SEQS_KEPT):
        r.add_event({**ev, "seq": 10**6 + seq, "frame": 0})  # attached to the held frame: seen grows, and is capped
    assert len(r.seen) <= rec_mod.SEQS_KEPT
    assert len(r.buffer[0]["_events"]) == rec_mod.MAX_EVENTS_PER_FRAME  # ...and so are the events on one frame
    r.close()
    (rec,) = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rec["events"]) == rec_mod.MAX_EVENTS_PER_FRAME
