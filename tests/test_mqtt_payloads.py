"""MQTT payloads and their JSON Schemas, the binary encoding, and the [mqtt] config (no broker needed)."""

from __future__ import annotations

import json
import re

import jsonschema
import numpy as np
import pytest

from edgepose.config import load_config
from edgepose.errors import ConfigError
from edgepose.mqtt import payloads
from edgepose.mqtt.config import MqttConfig
from edgepose.types import KEYPOINT_NAMES, ActionEvent, FrameResult, Pose
from tests.conftest_mqtt import frame, people, rand_pose


def validate(name: str, obj: dict) -> None:
    jsonschema.Draft202012Validator(payloads.load_schema(name), format_checker=jsonschema.FormatChecker()).validate(obj)


@pytest.mark.parametrize("name", payloads.SCHEMA_NAMES)
def test_schemas_are_valid_json_schema(name):
    schema = payloads.load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f":{name}:v1")


def test_person_definition_is_shared_by_frame_and_poses():
    # A poses message minus "device" is a frame record: both schemas must describe people identically.
    assert payloads.load_schema("frame")["$defs"]["person"] == payloads.load_schema("poses")["$defs"]["person"]


def test_poses_json_matches_pose_to_dict_and_schema(real_poses):
    fr = frame(7, real_poses)
    data = json.loads(payloads.poses_json(fr, "pi-1"))
    validate("poses", data)
    assert data["device"] == "pi-1" and data["frame"] == 7 and data["width"] == 1920
    ref = json.loads(json.dumps(fr.to_dict()))  # the JSONL record the rest of edgepose writes
    assert {k: v for k, v in data.items() if k != "device"} == ref
    validate("frame", payloads.frame_record(data))


def test_poses_json_handles_untracked_nan_and_digits():
    p = Pose(np.full((17, 2), np.nan), np.linspace(0, 1, 17), 0.5, track_id=None)
    data = json.loads(payloads.poses_json(frame(0, [p]), "d", ndigits=3))
    validate("poses", data)
    assert "id" not in data["people"][0]
    assert data["people"][0]["keypoints"]["nose"] == [0.0, 0.0, 0.0]
    empty = json.loads(payloads.poses_json(frame(1, []), "d"))
    assert empty["people"] == [] and validate("poses", empty) is None


@pytest.mark.parametrize("n", [0, 1, 5])
def test_binary_round_trip_within_quantisation(real_poses, n):
    poses = people(real_poses, n)
    poses[-1:] = [Pose(p.keypoints, p.scores, p.score, None) for p in poses[-1:]]  # one untracked person
    fr = frame(123456, poses, ts=1_700_000_000.123)
    data = payloads.poses_binary(fr)
    assert len(data) == 21 + 91 * n
    back = payloads.decode_poses(data, "pi-1")
    validate("poses", back)
    assert (back["frame"], back["width"], back["height"]) == (123456, 1920, 1278)
    assert back["ts"] == pytest.approx(1_700_000_000.123, abs=1e-3)
    assert len(back["people"]) == n
    for p, q in zip(poses, back["people"]):
        assert q.get("id") == p.track_id
        assert q["score"] == pytest.approx(p.score, abs=1e-4)
        xy = np.array([q["keypoints"][k][:2] for k in KEYPOINT_NAMES])
        s = np.array([q["keypoints"][k][2] for k in KEYPOINT_NAMES])
        np.testing.assert_allclose(xy, p.keypoints, atol=0.125 + 1e-3)  # quarter pixels
        np.testing.assert_allclose(s, p.scores, atol=0.5 / 255 + 1e-3)


@pytest.mark.parametrize("n", [1, 5])
def test_binary_is_at_most_a_third_of_json(real_poses, n):
    fr = frame(10, people(real_poses, n))
    js, bn = payloads.poses_json(fr, "edgepose"), payloads.poses_binary(fr)
    assert len(bn) * 3 <= len(js), (len(bn), len(js))


def test_binary_rejects_garbage():
    fr = frame(1, [rand_pose(np.random.default_rng(0))])
    good = payloads.poses_binary(fr)
    with pytest.raises(ValueError, match="bytes"):
        payloads.decode_poses_binary(good[:-3])
    with pytest.raises(ValueError, match="magic"):
        payloads.decode_poses_binary(b"XX" + good[2:])
    with pytest.raises(ValueError, match="version"):
        payloads.decode_poses_binary(good[:2] + b"\x09" + good[3:])
    # Far-out-of-frame keypoints saturate instead of wrapping around.
    p = Pose(np.full((17, 2), 1e6), np.ones(17), 1.0, 1)
    back = payloads.decode_poses_binary(payloads.poses_binary(frame(0, [p])))
    assert back["people"][0]["keypoints"]["nose"][0] == pytest.approx(32767 / 4)


def test_frame_record_with_events_and_camera_pose_validates(real_poses):
    ev = [
        ActionEvent(1, "wave", "start", 1.5, confidence=0.9),
        ActionEvent(2, "squat", "count", 1.0, count=3, extra={"depth": 0.4}),
    ]
    fr = FrameResult(
        3,
        1.5,
        real_poses,
        1920,
        1278,
        events=ev,
        extra={"camera_pose": {"position": [1.0, 2.0, 0.5], "orientation": [1.0, 0.0, 0.0, 0.0]}},
    )
    validate("frame", json.loads(json.dumps(fr.to_dict())))
    bad = json.loads(json.dumps(fr.to_dict()))
    del bad["people"][0]["keypoints"]["nose"]
    with pytest.raises(jsonschema.ValidationError):
        validate("frame", bad)


def test_other_payloads_validate(real_poses):
    ev = ActionEvent(4, "fall", "instant", 12.25, confidence=0.8)
    validate("events", json.loads(payloads.dumps(payloads.event_payload(ev, "pi-1", 17, 360, 12.25))))
    validate(
        "status", payloads.status_payload("pi-1", "online", 1.0, uptime=3.2, fps=14.5, frames=40, camera="ok", people=2)
    )
    validate("status", payloads.status_payload("pi-1", "offline", 1.0, reason="connection lost"))
    validate("state", payloads.state_payload("pi-1", 1.0, 2, True, ["walk", "walk", "wave"]))
    fr = frame(5, real_poses, camera_pose=[0.1, 0.2, 0.3, 1.0, 0.0, 0.0, 0.0])
    validate("camera_pose", payloads.camera_pose_payload(fr, "pi-1"))
    with pytest.raises(jsonschema.ValidationError):
        validate("status", payloads.status_payload("pi-1", "sleeping", 1.0))
    with pytest.raises(jsonschema.ValidationError):
        validate("events", {**payloads.event_payload(ev, "pi-1", 0, None, 1.0)})  # seq starts at 1


# -- poses payload bytes ---------------------------------------------------------------------
def tricky_poses(seed: int) -> list[Pose]:
    """Random people plus values where rounding is delicate: binary ties (0.25, 2.5), float32 near-ties
    (0.35, 0.0005), tiny negatives (-0.04 -> -0.0), NaN/inf, far out of frame (int16 saturation)."""
    rng = np.random.default_rng(seed)
    poses = [rand_pose(rng, track_id=i if i % 3 else None) for i in range(6)]
    special = np.array(
        [
            0.25,
            2.5,
            0.35,
            0.0005,
            -0.04,
            0.05,
            1234.55,
            -3.45,
            1e6,
            -1e6,
            np.nan,
            np.inf,
            -np.inf,
            0.125,
            99.95,
            8191.9,
            -0.0,
        ]
    )
    kp = np.resize(special, 34).reshape(17, 2)
    sc = np.resize(np.array([0.0005, 0.0015, 0.9995, 0.5, 1.0, 0.0, np.nan, 0.1235, 0.0625, 0.3125]), 17)
    poses.append(Pose(kp, sc, 0.99995, 7))
    poses.append(Pose(kp[::-1], sc[::-1], float("nan"), None))
    poses.append(Pose(kp * 0.5, sc, float("inf"), 2**31 - 1))
    poses.append(Pose(kp * 0.25, sc, 0.00005, 0))
    return poses


def reference_value(x: float, ndigits: int) -> float:
    """What the per-value encoder writes: %.{n}f of the value, NaN/inf as 0."""
    x = float(x)
    return float(f"{x if np.isfinite(x) else 0.0:.{ndigits}f}")


def golden_frames() -> list[FrameResult]:
    """Frames whose payloads pin the encoders' bytes: delicate values, epoch and media times at decimal
    ties and near-ties, NaN/inf, indices and sizes beyond their binary fields, extreme ids and scores."""
    rng = np.random.default_rng(5)
    stamps = [
        0.0,
        -0.0,
        -0.00001,
        0.00005,
        0.00015,
        1.00005,
        2.5,
        0.1235,
        1e-9,
        -3.25,
        6.99e9,
        7.1e9,
        1e20,
        float("nan"),
        float("inf"),
    ]
    stamps += [
        1_700_000_000 + k / 1e4 + d for k in range(0, 10000, 997) for d in (0.0, 0.00005, -0.00005, 0.000049, 0.000051)
    ]
    stamps += list(rng.uniform(0, 2e9, 100)) + list(rng.uniform(-100, 100, 100))
    out = [
        FrameResult(
            index=int(i * 7919),
            timestamp=float(ts),
            poses=tricky_poses(i % 7)[: i % 11],
            width=1920,
            height=int(i % 4000),
        )
        for i, ts in enumerate(stamps)
    ]
    out.append(FrameResult(index=2**32 + 5, timestamp=-6.9e9, poses=tricky_poses(9), width=70000, height=2**40))
    odd = [
        Pose(np.full((17, 2), 3e15), np.full(17, 0.5), 0.12345, 1),
        Pose(np.ones((17, 2)), np.ones(17), 0.00015, 2),
        Pose(np.ones((17, 2)), np.full(17, 1e30), 0.5, -(2**31)),
        Pose(np.ones((17, 2)), np.ones(17), 0.5, 2**31 - 1),
    ]
    out.append(FrameResult(index=14, timestamp=1.5, poses=odd, width=640, height=480))
    return out


def test_payload_bytes_are_those_of_the_former_compiled_and_python_encoders():
    """sha256 of these frames' payloads (JSON at 0-4 digits, binary, JSONL records) as written before the
    numba payload writers were removed, by them and by the Python encoders alike (commit 580fa96): a
    subscriber or a recording sees the same bytes."""
    import hashlib

    h = hashlib.sha256()
    for f in golden_frames():
        for nd in range(5):
            h.update(payloads.poses_json(f, 'pi-"1"', nd))
        h.update(payloads.poses_binary(f))
        h.update(payloads.frame_json(f, 2))
    assert h.hexdigest() == "17f1908fd0410680f3643753dbe17ecef63d6e9832cf34f7f8420d358bfbd228"


@pytest.mark.parametrize("ndigits", [0, 1, 2, 3, 4])
def test_json_values_are_per_value_formatting(ndigits):
    for seed in range(10):
        poses = tricky_poses(seed)
        fr = frame(seed, poses[:8], ts=1_700_000_000.123456)  # pose scores within [0, 1]: schema-valid
        data = json.loads(payloads.poses_json(fr, "pi-1", ndigits))
        validate("poses", data)
        fr = frame(seed, poses, ts=1_700_000_000.123456)
        data = json.loads(payloads.poses_json(fr, "pi-1", ndigits))
        assert [p.get("id") for p in data["people"]] == [p.track_id for p in poses]
        for p, q in zip(poses, data["people"]):
            assert q["score"] == (round(p.score, 4) if np.isfinite(p.score) else 0.0)
            for i, name in enumerate(KEYPOINT_NAMES):
                want = [
                    reference_value(p.keypoints[i, 0], ndigits),
                    reference_value(p.keypoints[i, 1], ndigits),
                    reference_value(p.scores[i], 3),
                ]
                assert q["keypoints"][name] == want, (name, p.keypoints[i], p.scores[i])
        assert data["ts"] == 1_700_000_000.1235


def test_json_agrees_with_the_jsonl_record(real_poses):
    fr = frame(3, people(real_poses, 5))
    data = json.loads(payloads.poses_json(fr, "pi-1"))
    assert payloads.frame_record(data) == json.loads(json.dumps(fr.to_dict()))


def reference_binary_person(p: Pose) -> bytes:
    """The per-value binary person record (struct, Python rounding): NaN/inf keypoints -> 0, saturation
    at the integer ranges, a NaN pose score -> 0 and an infinite one saturates."""
    import struct

    def q(v, scale, lo, hi):
        v = float(v) * scale
        return int(min(max(round(v), lo), hi)) if np.isfinite(v) else 0

    s = 0.0 if np.isnan(p.score) else p.score
    xy = [q(v, 4.0, -32768, 32767) for v in p.keypoints.ravel()]
    sc = [q(v, 255.0, 0, 255) for v in p.scores]
    return struct.pack(
        "<iH34h17B", -1 if p.track_id is None else p.track_id, round(min(max(s, 0.0), 1.0) * 65535.0), *xy, *sc
    )


def test_binary_is_per_value_packing_byte_for_byte():
    for seed in range(20):
        poses = tricky_poses(seed)
        data = payloads.poses_binary(frame(seed, poses))
        assert data[21:] == b"".join(reference_binary_person(p) for p in poses)
    odd = Pose(np.ones((17, 2)), np.ones(17), 0.5, 3)
    odd.keypoints = np.arange(34.0).reshape(17, 2) / 3  # float64, assigned after construction
    assert payloads.poses_binary(frame(0, [odd]))[21:] == reference_binary_person(odd)


def test_binary_refuses_a_negative_size():
    import struct

    for w, h in ((-1, 480), (640, -2)):
        with pytest.raises(struct.error):
            payloads.poses_binary(FrameResult(index=1, timestamp=1.0, poses=[], width=w, height=h))


@pytest.mark.parametrize("encoding", ["json", "binary"])
def test_sink_encoder_writes_what_the_functions_write(encoding, real_poses):
    enc = payloads.PosesEncoder(encoding, "pi-1", 2)
    for i, poses in enumerate(
        [people(real_poses, 5), [], tricky_poses(1), people(real_poses, 40), tricky_poses(2)[:2]]
    ):
        fr = frame(i, poses)
        assert enc(fr) == (payloads.poses_json(fr, "pi-1", 2) if encoding == "json" else payloads.poses_binary(fr))
    with pytest.raises(ValueError, match="xml"):
        payloads.PosesEncoder("xml")


@pytest.mark.parametrize("encoding", ["json", "binary"])
def test_arrays_of_another_shape_are_refused(encoding):
    """Pose refuses arrays of another shape at construction; arrays assigned later that are not 17
    keypoints make the encoders raise instead of writing a wrong payload."""
    for attr in ("scores", "keypoints"):
        bad = np.ones((20, 2) if attr == "keypoints" else 20, np.float32)
        with pytest.raises(ValueError, match=re.escape(f"got an array of shape {bad.shape}")):
            Pose(bad if attr == "keypoints" else np.ones((17, 2)), bad if attr == "scores" else np.ones(17), 0.5)
        p = Pose(np.ones((17, 2)), np.ones(17), 0.5, 1)
        setattr(p, attr, bad)
        with pytest.raises(ValueError):
            payloads.poses_json(frame(1, [p]), "pi-1") if encoding == "json" else payloads.poses_binary(frame(1, [p]))


# -- config -----------------------------------------------------------------
def test_password_is_redacted_and_env_wins(monkeypatch):
    cfg = MqttConfig(username="u", password="hunter2")
    assert "hunter2" not in repr(cfg) and "hunter2" not in json.dumps(cfg.redacted())
    assert cfg.resolved_password() == "hunter2"
    monkeypatch.setenv("EP_TEST_PW", "from-env")
    assert MqttConfig(username="u", password="x", password_env="EP_TEST_PW").resolved_password() == "from-env"
    monkeypatch.delenv("EP_TEST_PW")
    with pytest.raises(ConfigError, match="EP_TEST_PW.*not set"):
        MqttConfig(username="u", password_env="EP_TEST_PW").resolved_password()


def test_invalid_mqtt_values_name_the_field(tmp_path):
    for body, expect in (
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ('[mqtt]\nprotocol = "4"\n', "mqtt.protocol"),
        ('[mqtt]\nencoding = "xml"\n', "mqtt.encoding"),
        ("[mqtt]\nbackoff_min = 10\nbackoff_max = 1\n", "backoff_max"),
        ('[mqtt.tls]\nenabled = true\ncert_file = "c.pem"\n', "key_file"),
        ('[mqtt]\ntopic_prefix = "a/#"\n', "mqtt.topic_prefix"),
    ):
        f = tmp_path / "device.toml"
        f.write_text(body)
        with pytest.raises(ConfigError) as e:
            load_config(f)
        assert expect in str(e.value) and "\n" not in str(e.value).strip(), str(e.value)


def test_protocol_aliases_and_topics(tmp_path):
    f = tmp_path / "device.toml"
    f.write_text('device_id = "kitchen"\n[mqtt]\nprotocol = 5\ntopic_prefix = "home/{device_id}/pose/"\n')
    cfg = load_config(f)
    assert cfg.mqtt.protocol == "5"
    assert cfg.mqtt.topic(cfg.device_id, "events") == "home/kitchen/pose/events"
    assert MqttConfig(protocol="mqttv311").protocol == "3.1.1"
    assert MqttConfig().resolved_outbox_path("kitchen").name == "outbox-kitchen.sqlite"
