"""Versioned MQTT payloads: builders, a JSON and a compact binary encoding, and their schemas.

Every payload carries ``"v": PAYLOAD_VERSION``; a change that breaks a
consumer bumps it. The JSON Schema of each payload is in
``edgepose/schemas/<name>.schema.json`` (see :func:`load_schema`).

The ``poses`` payload is the JSONL frame record of :meth:`FrameResult.to_dict`
(same ``people`` objects) plus the device id, so a subscriber can record it as
is (``edgepose listen --jsonl``). It is the hot path (every frame), so the
JSON text is produced with one ``%`` format per person instead of building
dicts for :mod:`json`; the values are the same as :meth:`Pose.to_dict`'s.

Binary ``poses`` (``encoding = "binary"``), little-endian::

    header  "<2sBBIdHHB"  magic b"EP", version 1, kind 1 (poses), frame u32,
                          ts f64, width u16, height u16, people u8   (21 bytes)
    person  "<ihh" + 17x2 int16 + 17 uint8:
            track id i32 (-1 = none), pose score u16 (score * 65535),
            keypoint x, y in 1/4 px (int16, so -8192..8191.75 px),
            keypoint score u8 (score * 255)                           (91 bytes)

That is 112 bytes for one person (JSON: about 720).
"""
from __future__ import annotations

import json
import struct
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..types import KEYPOINT_NAMES, NUM_KEYPOINTS, ActionEvent, FrameResult, Pose

PAYLOAD_VERSION = 1
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_NAMES = ("frame", "poses", "events", "status", "camera_pose", "state")

BINARY_MAGIC = b"EP"
BINARY_KIND_POSES = 1
_HEADER = struct.Struct("<2sBBIdHHB")
#: One person in the binary encoding (numpy packs it without padding: 91 bytes).
PERSON_DTYPE = np.dtype(
    [("id", "<i4"), ("score", "<u2"), ("xy", "<i2", (NUM_KEYPOINTS, 2)), ("s", "u1", (NUM_KEYPOINTS,))]
)
XY_SCALE = 4.0  # binary keypoints are in quarter pixels
_XY_LIMIT = (np.iinfo(np.int16).min, np.iinfo(np.int16).max)
_PERSON_HEAD = struct.Struct("<iH")
_PERSON = struct.Struct(f"<iH{2 * NUM_KEYPOINTS}h{NUM_KEYPOINTS}B")
_SCALE = np.array([XY_SCALE, XY_SCALE, 255.0])
_LOW = np.array([_XY_LIMIT[0], _XY_LIMIT[0], 0.0])
_HIGH = np.array([_XY_LIMIT[1], _XY_LIMIT[1], 255.0])


def dumps(obj: Any) -> bytes:
    """Compact JSON (no spaces), UTF-8; unknown objects (e.g. numpy scalars) via ``str``/``float``."""
    return json.dumps(obj, separators=(",", ":"), default=_json_default).encode("utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# -- poses: JSON --------------------------------------------------------------
@lru_cache(maxsize=8)
def _keypoints_format(ndigits: int) -> str:
    # One %-format for all 17 keypoints: far cheaper than 17 dicts + lists through json.
    item = f'"%s":[%.{ndigits}f,%.{ndigits}f,%.3f]'
    return "{" + ",".join(item.replace("%s", name, 1) for name in KEYPOINT_NAMES) + "}"


def person_json(pose: Pose, ndigits: int = 1) -> str:
    """JSON text of one person, the same values as ``json.dumps(pose.to_dict(ndigits))``."""
    kp = np.empty((NUM_KEYPOINTS, 3), np.float64)
    kp[:, :2] = pose.keypoints
    kp[:, 2] = pose.scores
    if not np.isfinite(kp).all():  # JSON has no NaN; checked first because nan_to_num is slow
        kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
    body = _keypoints_format(ndigits) % tuple(kp.ravel().tolist())
    ident = "" if pose.track_id is None else f',"id":{int(pose.track_id)}'
    return f'{{"score":{round(float(pose.score), 4)!r}{ident},"keypoints":{body}}}'


@lru_cache(maxsize=64)
def _json_str(s: str) -> str:
    return json.dumps(s)


def _people_json(poses: list[Pose], ndigits: int) -> str:
    """All people at once: one numpy pass for every pose (the per-call overhead is what costs here)."""
    if not poses:
        return ""
    n = len(poses)
    kp = np.empty((n, NUM_KEYPOINTS, 3), np.float64)
    for i, p in enumerate(poses):
        kp[i, :, :2] = p.keypoints
        kp[i, :, 2] = p.scores
    if not np.isfinite(kp).all():  # JSON has no NaN; checked first because nan_to_num is slow
        kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
    fmt = _keypoints_format(ndigits)
    vals = kp.reshape(n, -1).tolist()
    out = []
    for p, v in zip(poses, vals):
        ident = "" if p.track_id is None else f',"id":{int(p.track_id)}'
        out.append(f'{{"score":{round(float(p.score), 4)!r}{ident},"keypoints":{fmt % tuple(v)}}}')
    return ",".join(out)


def poses_json(result: FrameResult, device_id: str, ndigits: int = 1) -> bytes:
    people = _people_json(result.poses, ndigits)
    # f-string header: a dict through json.dumps costs as much as one person.
    return (
        f'{{"v":{PAYLOAD_VERSION},"device":{_json_str(device_id)},"frame":{int(result.index)},'
        f'"ts":{round(float(result.timestamp), 4)!r},"width":{int(result.width)},"height":{int(result.height)},'
        f'"people":[{people}]}}'
    ).encode("ascii")


# -- poses: binary ------------------------------------------------------------
def poses_binary(result: FrameResult) -> bytes:
    n = len(result.poses)
    if n > 255:
        raise ValueError(f"binary poses payload holds at most 255 people, got {n}")
    header = _HEADER.pack(
        BINARY_MAGIC,
        PAYLOAD_VERSION,
        BINARY_KIND_POSES,
        int(result.index) & 0xFFFFFFFF,
        float(result.timestamp),
        min(int(result.width), 0xFFFF),
        min(int(result.height), 0xFFFF),
        n,
    )
    if n == 0:
        return header
    try:
        return header + b"".join([_person_binary_fast(p) for p in result.poses])
    except (ValueError, OverflowError):  # NaN, or a keypoint outside the int16 range: the careful path
        return header + _people_binary_clipped(result.poses)


_XY_MIN, _XY_MAX = _XY_LIMIT[0] / XY_SCALE, _XY_LIMIT[1] / XY_SCALE


def _person_binary_fast(p: Pose) -> bytes:
    # Plain Python on 51 numbers beats a dozen numpy calls on arrays this small.
    xy = p.keypoints.ravel().tolist()
    sc = p.scores.tolist()
    if min(xy) < _XY_MIN or max(xy) > _XY_MAX or min(sc) < 0.0 or max(sc) > 1.0:
        raise ValueError("out of range")
    score = round(min(max(float(p.score), 0.0), 1.0) * 65535.0)
    return _PERSON.pack(-1 if p.track_id is None else int(p.track_id), score,
                        *[round(v * XY_SCALE) for v in xy], *[round(v * 255.0) for v in sc])


def _people_binary_clipped(poses: list[Pose]) -> bytes:
    """Vectorised, with NaN -> 0 and saturation at the int16 range (rare: only when the fast path refuses)."""
    n = len(poses)
    a = np.empty((n, NUM_KEYPOINTS, 3), np.float64)
    for i, p in enumerate(poses):
        a[i, :, :2] = p.keypoints
        a[i, :, 2] = p.scores
    a *= _SCALE
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    np.rint(a, out=a)
    np.maximum(a, _LOW, out=a)
    np.minimum(a, _HIGH, out=a)
    xy = a[:, :, :2].astype("<i2").tobytes()
    sc = a[:, :, 2].astype(np.uint8).tobytes()
    parts = []
    for i, p in enumerate(poses):
        score = int(round(min(max(float(np.nan_to_num(p.score)), 0.0), 1.0) * 65535.0))
        parts.append(_PERSON_HEAD.pack(-1 if p.track_id is None else int(p.track_id), score))
        parts.append(xy[i * 68:(i + 1) * 68])
        parts.append(sc[i * NUM_KEYPOINTS:(i + 1) * NUM_KEYPOINTS])
    return b"".join(parts)


def decode_poses_binary(data: bytes, device_id: str | None = None, ndigits: int = 2) -> dict[str, Any]:
    """Inverse of :func:`poses_binary`: the same dict shape as the JSON ``poses`` payload."""
    if len(data) < _HEADER.size:
        raise ValueError(f"binary poses payload too short ({len(data)} bytes)")
    magic, version, kind, frame, ts, width, height, n = _HEADER.unpack_from(data)
    if magic != BINARY_MAGIC or kind != BINARY_KIND_POSES:
        raise ValueError("not an edgepose binary poses payload (bad magic or kind)")
    if version != PAYLOAD_VERSION:
        raise ValueError(f"binary poses payload version {version}, this edgepose reads {PAYLOAD_VERSION}")
    expected = _HEADER.size + n * PERSON_DTYPE.itemsize
    if len(data) != expected:
        raise ValueError(f"binary poses payload is {len(data)} bytes, header says {expected}")
    rec = np.frombuffer(data, PERSON_DTYPE, count=n, offset=_HEADER.size)
    people = []
    for r in rec:
        xy = r["xy"].astype(np.float64) / XY_SCALE
        s = r["s"].astype(np.float64) / 255.0
        person: dict[str, Any] = {"score": round(float(r["score"]) / 65535.0, 4)}
        if int(r["id"]) >= 0:
            person["id"] = int(r["id"])
        person["keypoints"] = {
            name: [round(float(xy[i, 0]), ndigits), round(float(xy[i, 1]), ndigits), round(float(s[i]), 3)]
            for i, name in enumerate(KEYPOINT_NAMES)
        }
        people.append(person)
    out: dict[str, Any] = {"v": version}
    if device_id is not None:
        out["device"] = device_id
    out.update({"frame": frame, "ts": round(ts, 4), "width": width, "height": height, "people": people})
    return out


def decode_poses(data: bytes, device_id: str | None = None) -> dict[str, Any]:
    """A ``poses`` payload in either encoding, as a dict."""
    if data[:2] == BINARY_MAGIC:
        return decode_poses_binary(data, device_id)
    return json.loads(data)


# -- other topics (always JSON) ---------------------------------------------
def event_payload(event: ActionEvent, device_id: str, seq: int, frame: int | None, ts: float) -> dict[str, Any]:
    """One action event. ``seq`` is the outbox id: increasing, never reused; subscribers dedupe on ``(device, seq)``."""
    return {
        "v": PAYLOAD_VERSION,
        "device": device_id,
        "seq": int(seq),
        "frame": None if frame is None else int(frame),
        "ts": round(float(ts), 4),
        "event": event.to_dict(),
    }


def status_payload(device_id: str, state: str, ts: float, **fields: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"v": PAYLOAD_VERSION, "device": device_id, "state": state, "ts": round(float(ts), 3)}
    d.update({k: v for k, v in fields.items() if v is not None})
    return d


def camera_pose_payload(result: FrameResult, device_id: str) -> dict[str, Any]:
    return {
        "v": PAYLOAD_VERSION,
        "device": device_id,
        "frame": int(result.index),
        "ts": round(float(result.timestamp), 4),
        "camera_pose": result.extra["camera_pose"],
    }


def state_payload(device_id: str, ts: float, people: int, fall: bool, actions: Iterable[str]) -> dict[str, Any]:
    """The low-rate summary for dashboards and Home Assistant: published only when it changes."""
    return {
        "v": PAYLOAD_VERSION,
        "device": device_id,
        "ts": round(float(ts), 3),
        "people": int(people),
        "fall": bool(fall),
        "actions": sorted(set(actions)),
    }


def frame_record(poses: dict[str, Any]) -> dict[str, Any]:
    """A ``poses`` payload as a JSONL frame record (``frame.schema.json``): the device id dropped."""
    return {k: v for k, v in poses.items() if k != "device"}


# -- schemas ----------------------------------------------------------------
@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of payload ``name`` (one of :data:`SCHEMA_NAMES`)."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
