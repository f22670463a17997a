"""Versioned MQTT payloads: builders, a JSON and a compact binary encoding, and their schemas.

Every payload carries ``"v": PAYLOAD_VERSION``; a change that breaks a
consumer bumps it. The JSON Schema of each payload is in
``edgepose/schemas/<name>.schema.json`` (see :func:`load_schema`).

The ``poses`` payload is the JSONL frame record of :meth:`FrameResult.to_dict`
(same ``people`` objects) plus the device id, so a subscriber can record it as
is (``edgepose listen --jsonl``). It is the hot path (every frame), so both
encodings are written into one buffer by compiled calls, one for the JSON header and
one per person (:mod:`edgepose.sinks.payloads_jit`, numba), or where numba does not load by
one ``%`` format per person (JSON) and a few numpy calls (binary): the same
bytes either way. The JSON values are :meth:`Pose.to_dict`'s.

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
import logging
import math
import struct
import sys
import time
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..types import FRAME_KEYS, KEYPOINT_NAMES, NUM_KEYPOINTS, ActionEvent, FrameResult, Pose, PoseBlock

log = logging.getLogger(__name__)

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


# -- poses: compiled writers ----------------------------------------------------
_COMPILED: Any = None  # edgepose.sinks.payloads_jit once loaded; False where numba does not load


def _compiled() -> Any:
    global _COMPILED
    if _COMPILED is None:
        t = time.perf_counter()
        try:
            from ..jit import expect_compile

            expect_compile("MQTT/JSONL payload writers")
            from . import payloads_jit
        except Exception as e:  # ImportError (also NUMBA_DISABLE_JIT), or a numba/numpy mismatch at import
            log.info("numba does not load (%s: %s): poses payloads are encoded in Python", type(e).__name__, e)
            _COMPILED = False
            return None
        seconds = time.perf_counter() - t
        if payloads_jit.load_kind() == "compiled":
            log.info("numba payload encoders compiled in %.1f s (cached for later starts)", seconds)
        else:
            log.info("numba payload encoders loaded in %.0f ms", 1e3 * seconds)
        _COMPILED = payloads_jit
    return _COMPILED or None


def warm_up() -> None:
    """Load (the first time on a machine: compile) the compiled payload writers now, e.g. at sink
    start, so that no frame pays for it. Logs what it cost."""
    _compiled()


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


@lru_cache(maxsize=64)
def _json_prefix(device_id: str | None) -> np.ndarray:
    """:func:`_head_prefix` as the compiled writer takes it."""
    return np.frombuffer(_head_prefix(device_id).encode(), np.uint8).copy()


def _new_buffer(size: int) -> np.ndarray:
    return np.empty(size, np.uint8)


def _poses_json_compiled(result: FrameResult, prefix: np.ndarray, ndigits: int, buffer: Callable[[int], np.ndarray]) -> bytes | None:
    """The whole payload written by the compiled writers into one buffer (``buffer(size)``);
    None where Python must write it (a value only Python rounds right, or keypoints that are not
    :class:`Pose`'s float32 arrays)."""
    jit = _compiled()
    if jit is None:
        return None
    poses = result.poses
    buf = buffer(prefix.size + jit.HEAD_MAX + len(poses) * jit.JSON_MAX + jit.SLACK)
    block = PoseBlock.of(poses)
    try:
        if block is not None:  # the decoder's poses, as they came: one call for the frame
            o = jit.frame_json(buf, prefix, result.index, result.timestamp, result.width, result.height,
                               block.keypoints, block.scores, block.score, block.ids, ndigits)
            return None if o < 0 else buf[: o + 2].tobytes()
        o = jit.head_json(buf, prefix, result.index, result.timestamp, result.width, result.height)
        if o < 0:
            return None
        person, no_id = jit.person_json, jit.NO_ID
        for p in poses:
            tid = p.track_id
            if tid == no_id:  # the sentinel for none: the Python encoder writes it
                return None
            o = person(buf, o, p.keypoints, p.scores, p.score, no_id if tid is None else tid, ndigits)
            if o < 0:  # a pose score at a decimal tie, |x| >= 2**52 / 10**d, arrays of another shape
                return None
    except (TypeError, OverflowError):  # arrays replaced after construction; an index beyond int64
        return None
    return buf[: o + 2].tobytes()  # the writers leave the closing "]}" after what they wrote


def _poses_json_python(result: FrameResult, device_id: str | None, ndigits: int) -> bytes:
    # f-string header: a dict through json.dumps costs as much as one person.
    head = (
        f'{_head_prefix(device_id)}{int(result.index)},'
        f'"ts":{round(float(result.timestamp), 4)!r},"width":{int(result.width)},"height":{int(result.height)},"people":['
    )
    people = _people_format(result.poses, ndigits) if result.poses else ""
    return f"{head}{people}]}}".encode("ascii")


def poses_json(result: FrameResult, device_id: str | None, ndigits: int = 1) -> bytes:
    """The ``poses`` payload as compact JSON: :meth:`FrameResult.to_dict`'s values plus the device id
    (none with ``device_id=None``: the JSONL record's start, see :func:`frame_json`).

    Keypoints are written as ``%.{ndigits}f`` (scores ``%.3f``), by the compiled writers when numba
    loads, else by one ``%`` format per person: the same bytes either way.
    """
    data = _poses_json_compiled(result, _json_prefix(device_id), ndigits, _new_buffer)
    return _poses_json_python(result, device_id, ndigits) if data is None else data


class PosesEncoder:
    """The ``poses`` payload of one sink's frames (:func:`poses_json` or :func:`poses_binary`: the same
    bytes), with its settings resolved once and one buffer reused from frame to frame. For one thread
    (the sink's publishing one): a second thread encoding at the same time would share the buffer."""

    def __init__(self, encoding: str = "json", device_id: str | None = None, ndigits: int = 1) -> None:
        if encoding not in ("json", "binary"):
            raise ValueError(f"unknown poses encoding {encoding!r}: use 'json' or 'binary'")
        self.encoding, self.device_id, self.ndigits = encoding, device_id, int(ndigits)
        self._json = encoding == "json"
        self._prefix = _json_prefix(device_id)
        self._buf = np.empty(0, np.uint8)  # grown to the largest frame's bound, then reused
        self._view = self._buf.data  # the bytes are taken through it: numpy's slicing code is colder
        self._people = -1  # the most people self._buf holds in either encoding

    def __call__(self, result: FrameResult) -> bytes:
        block = PoseBlock.of(result.poses)
        jit = _COMPILED
        if block is not None and jit:
            # The pipeline's frames (one PoseBlock each): one compiled call and as little Python around it
            # as can be, because at a few microseconds a frame every call and attribute read shows.
            n = len(block.ids)
            if n > self._people:
                self._buffer(self._prefix.size + jit.HEAD_MAX + n * jit.JSON_MAX + jit.SLACK)
                self._people = n
            buf = self._buf
            try:
                if self._json:
                    o = jit.frame_json(buf, self._prefix, result.index, result.timestamp, result.width, result.height,
                                       block.keypoints, block.scores, block.score, block.ids, self.ndigits)
                    if o >= 0:
                        return self._view[: o + 2].tobytes()
                    return _poses_json_python(result, self.device_id, self.ndigits)  # a value only Python writes right
                elif _LITTLE_ENDIAN:
                    o = jit.frame_binary(buf, result.index, result.timestamp, result.width, result.height,
                                         block.keypoints, block.scores, block.score, block.ids)
                    if o > 0:
                        return self._view[:o].tobytes()
            except (TypeError, OverflowError):  # the block's arrays replaced; an index beyond int64
                pass
        if not self._json:
            return _poses_binary(result, self._buffer)
        data = _poses_json_compiled(result, self._prefix, self.ndigits, self._buffer)
        return _poses_json_python(result, self.device_id, self.ndigits) if data is None else data

    def _buffer(self, size: int) -> np.ndarray:
        if self._buf.size < size:  # a larger crowd than before: kept for the next one
            self._buf = np.empty(size, np.uint8)
            self._view = self._buf.data
        return self._buf


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
_LITTLE_ENDIAN = sys.byteorder == "little"  # the compiled header writes ts in the machine's order


def poses_binary(result: FrameResult) -> bytes:
    return _poses_binary(result, _new_buffer)


def _poses_binary(result: FrameResult, buffer: Callable[[int], np.ndarray]) -> bytes:
    """The binary payload, header and people written into ``buffer(size)`` by the compiled writers
    where numba loads, else packed by ``struct`` and numpy: the same bytes."""
    poses = result.poses
    n = len(poses)
    if n > 255:
        raise ValueError(f"binary poses payload holds at most 255 people, got {n}")
    jit = _compiled()
    if jit is not None and _LITTLE_ENDIAN:
        buf = buffer(_HEADER.size + n * jit.RECORD)
        block = PoseBlock.of(poses)
        try:
            if block is not None:  # as in the JSON encoder
                o = jit.frame_binary(buf, result.index, result.timestamp, result.width, result.height,
                                     block.keypoints, block.scores, block.score, block.ids)
                if o > 0:
                    return buf[:o].tobytes()
            o = jit.head_binary(buf, result.index, result.timestamp, result.width, result.height, n)
            if o > 0:
                person = jit.person_binary
                for p in poses:
                    tid = p.track_id
                    o = person(buf, o, p.keypoints, p.scores, p.score, -1 if tid is None else tid)
                    if o < 0:  # arrays not of 17 keypoints: numpy says what is wrong
                        break
                else:
                    return buf[:o].tobytes()
        except (TypeError, OverflowError):  # arrays replaced after construction; an index beyond int64
            pass
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
    even, saturated at their integer ranges, NaN/inf keypoints -> 0 (the compiled writer's bytes)."""
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
