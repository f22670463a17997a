"""Versioned MQTT payloads: builders, a JSON and a compact binary encoding, and their schemas.

Every payload carries ``"v": PAYLOAD_VERSION``; a change that breaks a
consumer bumps it. The JSON Schema of each payload is in
``edgepose/schemas/<name>.schema.json`` (see :func:`load_schema`).

The ``poses`` payload is the JSONL frame record of :meth:`FrameResult.to_dict`
(same ``people`` objects) plus the device id, so a subscriber can record it as
is (``edgepose listen --jsonl``). It is the hot path (every frame): one ``%``
format per person (JSON) and a few numpy calls (binary). The JSON values are
:meth:`Pose.to_dict`'s.

Binary ``poses`` (``encoding = "binary"``), little-endian::

    header  "<2sBBIdHHB"  magic b"EP", version 1, kind 1 (poses), frame u32,
                          ts f64, width u16, height u16, people u8   (21 bytes)
    person  "<iH" + 17x2 int16 + 17 uint8:
            track id i32 (-1 = none), pose score u16 (score * 65535),
            keypoint x, y in 1/4 px (int16, so -8192..8191.75 px),
            keypoint score u8 (score * 255)                           (91 bytes)

That is 112 bytes for one person (JSON: about 720).
"""

from __future__ import annotations

import json
import math
import struct
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..types import FRAME_KEYS, KEYPOINT_NAMES, NUM_KEYPOINTS, ActionEvent, FrameResult, Pose

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


@lru_cache(maxsize=64)
def _json_str(s: str) -> str:
    return json.dumps(s)


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0


def _people_format(poses: list[Pose], ndigits: int) -> str:
    """The people array's items, one %-format per person (NaN/inf -> 0: JSON has none)."""
    n = len(poses)
    kp = np.empty((n, NUM_KEYPOINTS, 3), np.float64)
    kp[:, :, :2] = [p.keypoints for p in poses]
    kp[:, :, 2] = [p.scores for p in poses]
    if not np.isfinite(kp).all():  # checked first because nan_to_num is slow
        kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
    fmt = _keypoints_format(ndigits)
    out = []
    for p, v in zip(poses, kp.reshape(n, -1).tolist()):
        ident = "" if p.track_id is None else f',"id":{int(p.track_id)}'
        out.append(f'{{"score":{round(_finite(p.score), 4)!r}{ident},"keypoints":{fmt % tuple(v)}}}')
    return ",".join(out)


@lru_cache(maxsize=64)
def _head_prefix(device_id: str | None) -> str:
    """The bytes before the frame index: the ``poses`` payload's, or without a device the JSONL record's."""
    device = "" if device_id is None else f'"device":{_json_str(device_id)},'
    return f'{{"v":{PAYLOAD_VERSION},{device}"frame":'


def poses_json(result: FrameResult, device_id: str | None, ndigits: int = 1) -> bytes:
    """The ``poses`` payload as compact JSON: :meth:`FrameResult.to_dict`'s values plus the device id
    (none with ``device_id=None``: the JSONL record's start, see :func:`frame_json`); keypoints are
    written as ``%.{ndigits}f``, scores ``%.3f``."""
    # f-string header: a dict through json.dumps costs as much as one person.
    head = (
        f"{_head_prefix(device_id)}{int(result.index)},"
        f'"ts":{round(float(result.timestamp), 4)!r},"width":{int(result.width)},"height":{int(result.height)},"people":['
    )
    people = _people_format(result.poses, ndigits) if result.poses else ""
    return f"{head}{people}]}}".encode("ascii")


class PosesEncoder:
    """The ``poses`` payload of one sink's frames (:func:`poses_json` or :func:`poses_binary`), with its
    settings resolved once."""

    def __init__(self, encoding: str = "json", device_id: str | None = None, ndigits: int = 1) -> None:
        if encoding not in ("json", "binary"):
            raise ValueError(f"unknown poses encoding {encoding!r}: use 'json' or 'binary'")
        self.encoding, self.device_id, self.ndigits = encoding, device_id, int(ndigits)
        self._json = encoding == "json"

    def __call__(self, result: FrameResult) -> bytes:
        if self._json:
            return poses_json(result, self.device_id, self.ndigits)
        return poses_binary(result)


def frame_json(result: FrameResult, ndigits: int = 1) -> bytes:
    """The JSON Lines record of one frame (``frame.schema.json``, :meth:`FrameResult.to_dict`'s values)
    as compact JSON, its people written by the ``poses`` payload's writers (the payload without the
    device), then its events and ``extra`` (e.g. ``camera_pose``)."""
    rest: dict[str, Any] = {}
    if result.events:
        rest["events"] = [e.to_dict() for e in result.events]
    if result.extra:
        if not FRAME_KEYS.isdisjoint(result.extra):  # extra overriding a record key: to_dict's order decides
            return dumps(result.to_dict())
        rest.update(result.extra)
    data = poses_json(result, None, ndigits)
    return data[:-1] + b"," + dumps(rest)[1:] if rest else data


# -- poses: binary ------------------------------------------------------------
def poses_binary(result: FrameResult) -> bytes:
    """The binary payload: the header packed by ``struct``, the people by numpy."""
    poses = result.poses
    n = len(poses)
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
    return header + _people_binary(poses) if n else header


def _people_binary(poses: list[Pose]) -> bytes:
    """The person records with numpy, all people at once: quarter pixels and scores rounded half to
    even, saturated at their integer ranges, NaN/inf keypoints -> 0."""
    a = np.empty((len(poses), NUM_KEYPOINTS, 3), np.float64)
    a[:, :, :2] = np.array([p.keypoints for p in poses])
    a[:, :, 2] = np.array([p.scores for p in poses])
    meta = np.array([(p.score, -1 if p.track_id is None else p.track_id) for p in poses], np.float64)
    a *= _SCALE
    a[~np.isfinite(a)] = 0.0
    np.rint(a, out=a)
    np.clip(a, _LOW, _HIGH, out=a)
    score = np.nan_to_num(meta[:, 0], nan=0.0)  # an infinite pose score saturates
    rec = np.empty(len(poses), PERSON_DTYPE)
    rec["id"] = meta[:, 1]
    rec["score"] = np.rint(np.clip(score, 0.0, 1.0) * 65535.0)
    rec["xy"] = a[:, :, :2]
    rec["s"] = a[:, :, 2]
    return rec.tobytes()


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
