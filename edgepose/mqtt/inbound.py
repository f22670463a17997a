"""Messages read from a broker, which anyone with publish rights can write: parsed and checked before use.

``edgepose listen`` and the fleet page of ``edgepose view`` (through :class:`~.subscriber.Subscriber`) read each
``poses``, ``events``, ``status`` and ``state`` message through :func:`parse`.
It returns a new dict holding only the fields of the payload's schema
(``edgepose/schemas/``), each of its type, or raises :class:`BadMessage` with
a short reason. So a hostile or broken publisher cannot stop a subscriber
(deep JSON, a missing ``seq``), poison its output (``NaN`` is not JSON; a
field the page would render), speak for another device (a ``device`` field
that differs from the topic's) or grow its memory (payload, string and list
sizes are capped). :class:`Rejects` turns a flood of bad messages into one
line per problem.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from ..types import KEYPOINT_NAMES

#: Largest payload read (a JSON poses message of 8 people is about 5 KB).
MAX_PAYLOAD = 1 << 20
#: People in one poses message.
MAX_PEOPLE = 64
#: Characters of one string field (device ids, actions, reasons, model names).
MAX_STR = 200
#: Actions in one state message; nesting of an event's free-form ``extra``.
MAX_ITEMS = 64
MAX_DEPTH = 8
#: Bytes of an event's free-form ``extra`` (as JSON).
MAX_EXTRA = 4096
PAYLOAD_VERSION = 1
KINDS = ("poses", "events", "status", "state")
EVENT_KINDS = ("start", "end", "instant", "count")
STATUS_STATES = ("online", "offline")
CAMERA_STATES = ("starting", "ok", "unavailable", "ended")
_STATUS_STR = ("reason", "version", "model", "camera_error")
_STATUS_NUM = ("heartbeat", "uptime", "fps")
_STATUS_INT = (
    "frames",
    "frames_dropped",
    "files_skipped",
    "poses_sent",
    "poses_dropped",
    "poses_decimated",
    "events_sent",
    "events_pending",
    "events_dropped",
    "people",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadMessage(ValueError):
    """A message that is not what its topic promises; the text says what is wrong, briefly."""


def _no_constant(name: str) -> Any:
    raise BadMessage(f"{name} is not a JSON number")


def _finite_float(s: str) -> float:
    x = float(s)
    if not math.isfinite(x):
        raise BadMessage(f"{s[:20]} overflows a float")
    return x


def loads(payload: bytes) -> Any:
    """JSON from a broker: UTF-8, finite numbers only, at most :data:`MAX_PAYLOAD` bytes."""
    if len(payload) > MAX_PAYLOAD:
        raise BadMessage(f"{len(payload)} bytes, over the {MAX_PAYLOAD} this reader takes")
    try:
        return json.loads(payload, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadMessage("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise BadMessage("not UTF-8") from None
    except json.JSONDecodeError as e:
        raise BadMessage(f"not JSON ({e.msg} at byte {e.pos})") from None
    except BadMessage:
        raise
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise BadMessage(f"unreadable JSON ({str(e)[:80]})") from None


def _obj(x: Any, what: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise BadMessage(f"{what} is {type(x).__name__}, not an object")
    return x


def _int(d: dict[str, Any], key: str, *, lo: int | None = 0, required: bool = True, null: bool = False) -> int | None:
    v = d.get(key)
    if v is None:
        if key in d and null:
            return None
        if required:
            raise BadMessage(f"`{key}` is missing" if key not in d else f"`{key}` is null")
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadMessage(f"`{key}` is {json.dumps(v)[:30]}, not an integer")
    if lo is not None and v < lo:
        raise BadMessage(f"`{key}` is {v}, below {lo}")
    return v


def _num(d: dict[str, Any], key: str, *, required: bool = True, null: bool = False) -> float | None:
    v = d.get(key)
    if v is None:
        if (key in d and null) or not required:
            return None
        raise BadMessage(f"`{key}` is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadMessage(f"`{key}` is {json.dumps(v)[:30]}, not a number")
    return v


def _text(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise BadMessage(f"`{key}` is {json.dumps(v)[:30]}, not a string")
    if len(v) > MAX_STR:
        raise BadMessage(f"`{key}` is {len(v)} characters long, over {MAX_STR}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: no file or page could carry it
        raise BadMessage(f"`{key}` holds an unpaired surrogate") from None
    return v


def _depth_ok(x: Any, limit: int) -> bool:
    stack = [(x, 0)]
    n = 0
    while stack:
        v, d = stack.pop()
        n += 1
        if d > limit or n > 10_000:
            return False
        if isinstance(v, dict):
            stack.extend((w, d + 1) for w in v.values())
        elif isinstance(v, list):
            stack.extend((w, d + 1) for w in v)
    return True


def _head(d: dict[str, Any], device: str) -> dict[str, Any]:
    v = d.get("v", PAYLOAD_VERSION)
    if v != PAYLOAD_VERSION:
        raise BadMessage(f"payload version {json.dumps(v)[:20]}, this edgepose reads {PAYLOAD_VERSION}")
    named = d.get("device", device)
    if named != device:
        raise BadMessage(f"it names device {json.dumps(named)[:60]} but came on the topic of {device!r}")
    return {"v": PAYLOAD_VERSION, "device": device}


def _person(p: Any) -> dict[str, Any]:
    p = _obj(p, "a person")
    out: dict[str, Any] = {"score": _num(p, "score")}
    tid = _int(p, "id", required=False, null=True)
    if tid is not None:
        out["id"] = tid
    kps = _obj(p.get("keypoints"), "`keypoints`")
    pts = {}
    for name in KEYPOINT_NAMES:
        k = kps.get(name)
        if not isinstance(k, list) or len(k) != 3:
            raise BadMessage(f"keypoint `{name}` is not [x, y, score]")
        pts[name] = [_num({name: c}, name) for c in k]
    out["keypoints"] = pts
    return out


def poses(d: dict[str, Any], device: str) -> dict[str, Any]:
    out = _head(d, device)
    out.update(frame=_int(d, "frame"), ts=_num(d, "ts"), width=_int(d, "width", lo=1), height=_int(d, "height", lo=1))
    people = d.get("people")
    if not isinstance(people, list):
        raise BadMessage("`people` is not a list")
    if len(people) > MAX_PEOPLE:
        raise BadMessage(f"{len(people)} people, over {MAX_PEOPLE}")
    out["people"] = [_person(p) for p in people]
    return out


def events(d: dict[str, Any], device: str) -> dict[str, Any]:
    out = _head(d, device)
    out.update(seq=_int(d, "seq", lo=1), frame=_int(d, "frame", null=True), ts=_num(d, "ts"))
    e = _obj(d.get("event"), "`event`")
    ev: dict[str, Any] = {
        "track_id": _int(e, "track_id", lo=None, null=True),
        "action": _text(e.get("action"), "action"),
        "kind": e.get("kind"),
        "start": _num(e, "start"),
        "end": _num(e, "end", null=True),
        "confidence": _num(e, "confidence"),
    }
    if not ev["action"]:
        raise BadMessage("`action` is empty")
    if ev["kind"] not in EVENT_KINDS:
        raise BadMessage(f"`kind` is {json.dumps(ev['kind'])[:30]}, not one of {', '.join(EVENT_KINDS)}")
    if "count" in e:
        ev["count"] = _int(e, "count")
    if "extra" in e:
        extra = _obj(e["extra"], "`extra`")
        if not _depth_ok(extra, MAX_DEPTH):
            raise BadMessage(f"`extra` nests deeper than {MAX_DEPTH} levels or holds over 10000 values")
        # Kept in logs and queued per browser: its size is capped like the strings beside it.
        if len(json.dumps(extra)) > MAX_EXTRA:
            raise BadMessage(f"`extra` is over {MAX_EXTRA} bytes of JSON")
        ev["extra"] = extra
    out["event"] = ev
    return out


def status(d: dict[str, Any], device: str) -> dict[str, Any]:
    out = _head(d, device)
    state = d.get("state")
    if state not in STATUS_STATES:
        raise BadMessage(f"`state` is {json.dumps(state)[:30]}, not online or offline")
    out.update(state=state, ts=_num(d, "ts"))
    for k in _STATUS_STR:
        if d.get(k) is not None:
            out[k] = _text(d[k], k)
    for k in _STATUS_NUM:
        if d.get(k) is not None:
            out[k] = _num(d, k)
    for k in _STATUS_INT:
        if d.get(k) is not None:
            out[k] = _int(d, k)
    for k, allowed in (("protocol", ("5", "3.1.1")), ("encoding", ("json", "binary")), ("camera", CAMERA_STATES)):
        if d.get(k) is not None:
            if d[k] not in allowed:
                raise BadMessage(f"`{k}` is {json.dumps(d[k])[:30]}, not one of {', '.join(allowed)}")
            out[k] = d[k]
    return out


def state(d: dict[str, Any], device: str) -> dict[str, Any]:
    out = _head(d, device)
    actions = d.get("actions", [])
    if not isinstance(actions, list) or len(actions) > MAX_ITEMS:
        raise BadMessage(f"`actions` is not a list of at most {MAX_ITEMS}")
    fall = d.get("fall", False)
    if not isinstance(fall, bool):
        raise BadMessage("`fall` is not true or false")
    out.update(ts=_num(d, "ts"), people=_int(d, "people"), fall=fall, actions=[_text(a, "actions") for a in actions])
    return out


_CHECKS = {"poses": poses, "events": events, "status": status, "state": state}


def parse(kind: str, payload: bytes, device: str) -> dict[str, Any] | None:
    """The checked payload of a ``kind`` message from ``device`` (the topic's), or None for an empty (cleared) one.

    Binary ``poses`` go through :func:`~edgepose.mqtt.payloads.decode_poses_binary`, which checks their layout.
    Kinds other than :data:`KINDS` are only read as JSON by :func:`loads` (and returned when they are an object).
    """
    if not payload:
        return None
    if kind == "poses":
        from .payloads import BINARY_MAGIC, decode_poses_binary

        if payload[:2] == BINARY_MAGIC:
            if len(payload) > MAX_PAYLOAD:
                raise BadMessage(f"{len(payload)} bytes, over the {MAX_PAYLOAD} this reader takes")
            try:
                decoded = decode_poses_binary(bytes(payload), device)
            except ValueError as e:  # its own checks of magic, version and length
                raise BadMessage(str(e)) from None
            return poses(decoded, device)
    data = loads(payload)
    check = _CHECKS.get(kind)
    if check is None:
        if not _depth_ok(data, MAX_DEPTH * 4):
            raise BadMessage("JSON nested too deeply")
        return data if isinstance(data, dict) else {"value": data}
    return check(_obj(data, "the payload"), device)


def raw_topic(msg: Any) -> str:
    """The topic of a paho message whose topic is not UTF-8 (``msg.topic`` raises then), its bytes escaped."""
    return repr(bytes(getattr(msg, "_topic", b"")))[2:-1]


class Rejects:
    """Counts bad messages and says so in one line per problem (then at most once a minute), not one per message."""

    def __init__(self, what: str, every_s: float = 60.0):
        self.what = what
        self.every_s = every_s
        self.total = 0
        self.first: str | None = None
        self._said: dict[str, float] = {}

    def note(self, topic: str, reason: str) -> str | None:
        """The line to log for this rejected message, or None when that problem was said recently."""
        self.total += 1
        topic = _CONTROL.sub(
            lambda m: f"\\x{ord(m[0]):02x}", topic[:120]
        )  # the publisher's text must not drive a terminal
        line = (
            f"{self.what}: dropped a message on {topic}: {reason}. Fix: find the client publishing it; "
            "a broker ACL that lets only each device write its own topics keeps others out."
        )
        self.first = self.first or line
        key = topic.rsplit("/", 1)[-1] + ":" + reason.split(" ", 1)[0]
        now = time.monotonic()
        if now - self._said.get(key, -1e9) < self.every_s:
            return None
        if len(self._said) > 1000:
            self._said.clear()
        self._said[key] = now
        return line + ("" if self.total == 1 else f" ({self.total} dropped so far.)")


def subscription(topic_prefix: str) -> tuple[str, re.Pattern[str]]:
    """``(topic filter, regex)`` for every device under ``topic_prefix`` (``{device_id}`` becomes ``+``).

    The regex matches a topic and yields ``device`` and ``kind``. A prefix
    without ``{device_id}`` is one device, named by the last level of the prefix.
    """
    prefix = topic_prefix.rstrip("/")
    filt, rx = [], []
    found = False
    for lv in prefix.split("/"):
        if "{device_id}" in lv:
            found = True
            filt.append("+")
            a, _, b = lv.partition("{device_id}")
            rx.append(re.escape(a) + r"(?P<device>[^/]+?)" + re.escape(b))
        else:
            filt.append(lv)
            rx.append(re.escape(lv))
    if not found:
        rx[-1] = f"(?P<device>{rx[-1]})"
    return "/".join(filt) + "/#", re.compile("^" + "/".join(rx) + r"/(?P<kind>[^/]+)$")
