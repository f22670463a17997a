"""The fleet page of ``edgepose view``: every device under the topic prefix, live, in one browser tab.

:class:`FleetHub` subscribes (paho, QoS 1) to ``<prefix with {device_id} = +>/#``
and keeps, per device, its retained ``status`` (online/offline, also from the
Last Will), its newest poses and counts; action events go to one merged log
(deduplicated on ``(device, seq)``: delivery is at-least-once). Browsers get
Server-Sent Events from ``/sse``: a snapshot on connect, then ``status`` and
``event`` messages as they arrive, and the newest poses of every device that
moved, batched ``POSES_HZ`` times a second (a browser draws at most that often,
so 50 devices at 15 FPS cost it one message per batch, not 750). A browser
that falls behind by ``CLIENT_BACKLOG`` messages is disconnected; its
EventSource reconnects and starts again from a fresh snapshot.

Every message is checked by :func:`edgepose.mqtt.inbound.parse` first: a
malformed or forged one (another device's name, ``NaN``, deep JSON) is
dropped with one line per problem, so it can neither break ``/api/fleet``
nor the page. An empty retained message clears what it replaced. At most
``MAX_DEVICES`` devices are kept (the least recently heard goes first) and
a device not heard for ``DEVICE_TTL_S`` is forgotten; an ``online`` status
not refreshed within ``STALE_HEARTBEATS`` heartbeats shows as offline
(stale), so a retained ``online`` that nobody keeps alive (a device that
vanished, or a forgery) does not stay green.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Any

from ..mqtt.inbound import BadMessage, parse, subscription
from ..types import KEYPOINT_NAMES
from .config import HttpConfig
from .server import Handler, WebServer, page

log = logging.getLogger(__name__)

POSES_HZ = 20.0
CLIENT_BACKLOG = 2000
#: ...or this many bytes queued for it, whichever comes first (a batch of many devices' poses is large).
CLIENT_BACKLOG_BYTES = 16 << 20
SSE_KEEPALIVE_S = 15.0
EVENTS_KEPT = 200
#: Event sequence numbers remembered per device to drop re-deliveries (these come within seconds).
SEQS_KEPT = 4096
KINDS = ("poses", "events", "status", "state")
#: Devices kept at once; one more pushes out the least recently heard (a publisher inventing ids cannot grow memory).
MAX_DEVICES = 1000
#: A device not heard for this long is forgotten (its retained status returns it when it comes back).
DEVICE_TTL_S = 24 * 3600.0
#: An online status older than this many heartbeats (status.heartbeat, else DEFAULT_HEARTBEAT_S) shows as stale.
STALE_HEARTBEATS = 3
DEFAULT_HEARTBEAT_S = 30.0
#: ...but never sooner than this: a loaded machine delays heartbeats by seconds, and a tile must not flicker.
MIN_STALE_S = 15.0
#: Seconds between sweeps for stale and expired devices.
SWEEP_S = 1.0


def compact_people(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Poses for the browser: ``{"id", "score", "k": [x, y, s] * 17}`` in COCO order (a third of the JSON)."""
    out = []
    for p in people:
        kps = p.get("keypoints", {})
        flat: list[float] = []
        for name in KEYPOINT_NAMES:
            flat.extend(kps.get(name, (0.0, 0.0, 0.0)))
        out.append({"id": p.get("id"), "score": p.get("score", 0.0), "k": flat})
    return out


class _Client:
    def __init__(self) -> None:
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.cond = threading.Condition()
        self.overflow = False


class FleetHub:
    """MQTT in, Server-Sent Events out."""

    def __init__(self, http: HttpConfig, mqtt_cfg: Any, *, client_id: str):
        self.http = http
        self.mcfg = mqtt_cfg
        self.filter, self.pattern = subscription(mqtt_cfg.topic_prefix)
        self.devices: dict[str, dict[str, Any]] = {}
        #: Device -> when last heard (monotonic), least recent first.
        self._heard: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._status_t: dict[str, float] = {}
        self._evicted_said = False
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self._seen: dict[str, tuple[set[int], collections.deque[int]]] = {}
        self.counts = collections.Counter[str]()
        self._lock = threading.Lock()
        self._dirty: dict[str, dict[str, Any]] = {}
        #: Devices forgotten since the last sweep, for the browsers (bounded: past it, a reload shows the truth).
        self._gone: collections.deque[str] = collections.deque(maxlen=MAX_DEVICES)
        self._clients: set[_Client] = set()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self.client_id = client_id
        from ..mqtt.subscriber import Subscriber  # paho only for the fleet page

        self.subscriber = Subscriber(mqtt_cfg, client_id, self.filter, self.handle, who="edgepose view")
        self.rejects = self.subscriber.rejects
        self.server = WebServer(
            http,
            {
                "/": page("fleet.html"),
                "/sse": self._sse,
                "/api/fleet": lambda h: h.send_json(self.snapshot()),
                "/healthz": lambda h: h.send_bytes(
                    200 if self.connected else 503,
                    b"ok\n" if self.connected else b"no broker\n",
                    "text/plain; charset=utf-8",
                ),
            },
            what="edgepose view: fleet",
        )

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> FleetHub:
        self.subscriber.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="edgepose-sse-poses", daemon=True)
        self._flusher.start()
        self.server.start()
        return self

    def close(self) -> None:
        self._stop.set()
        for cl in list(self._clients):
            with cl.cond:
                cl.cond.notify_all()
        self.server.stop()
        self.subscriber.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def connected(self) -> bool:
        return self.subscriber.connected.is_set()

    # -- MQTT (paho's thread) ----------------------------------------------------------
    def _device(self, dev: str) -> dict[str, Any]:
        """The entry of ``dev``, made when new (pushing out the least recently heard beyond MAX_DEVICES); under the lock."""
        self._heard[dev] = time.monotonic()
        self._heard.move_to_end(dev)
        info = self.devices.get(dev)
        if info is None:
            info = self.devices[dev] = {"device": dev}
            while len(self.devices) > MAX_DEVICES:
                old, _ = self._heard.popitem(last=False)
                self._forget(old)
                if not self._evicted_said:
                    self._evicted_said = True
                    log.warning(
                        "edgepose view: over %d devices under %s; forgetting the least recently heard. Fix: subscribe "
                        "to fewer devices (mqtt.topic_prefix), or find the client inventing device ids.",
                        MAX_DEVICES,
                        self.filter,
                    )
        return info

    def _forget(self, dev: str) -> None:
        self.devices.pop(dev, None)
        self._heard.pop(dev, None)
        self._seen.pop(dev, None)
        self._dirty.pop(dev, None)
        self._status_t.pop(dev, None)
        self._gone.append(dev)

    def handle(self, topic: str, payload: bytes) -> None:
        m = self.pattern.match(topic)
        if m is None or m["kind"] not in KINDS:
            return
        dev, kind = m["device"], m["kind"]
        if len(dev) > 200:
            raise BadMessage(f"a device id of {len(dev)} characters")
        self.counts[kind] += 1
        data = parse(kind, payload, dev)
        if data is None:  # a cleared retained message: what it held goes too
            if kind in ("status", "state"):
                with self._lock:
                    info = self.devices.get(dev)
                    if info is None or kind not in info:
                        return
                    del info[kind]
                    if kind == "status":
                        info.pop("online", None)
                        self._status_t.pop(dev, None)
                self._broadcast(
                    kind,
                    {"device": dev, "online": False, "status": None}
                    if kind == "status"
                    else {"device": dev, "state": None},
                )
            return
        if kind == "poses":
            msg = {
                "device": dev,
                "frame": data["frame"],
                "ts": data["ts"],
                "width": data["width"],
                "height": data["height"],
                "people": compact_people(data["people"]),
            }
            with self._lock:
                info = self._device(dev)
                info["poses"] = msg
                info["frames"] = info.get("frames", 0) + 1
                self._dirty[dev] = msg
            return
        if kind == "events":
            seq = data["seq"]
            with self._lock:
                seen, order = self._seen.setdefault(dev, (set(), collections.deque()))
                if seq in seen:
                    return  # a re-delivery (QoS 1 is at-least-once)
                seen.add(seq)
                order.append(seq)
                if len(order) > SEQS_KEPT:
                    seen.discard(order.popleft())
                # The device last: the topic names it, nothing in the payload can.
                ev = {**data["event"], "seq": seq, "frame": data["frame"], "ts": data["ts"], "device": dev}
                self.events.append(ev)
                info = self._device(dev)
                info["events"] = info.get("events", 0) + 1
            self._broadcast("event", ev)
        elif kind == "status":
            with self._lock:
                info = self._device(dev)
                info["status"] = data
                info["online"] = data["state"] == "online"
                info.pop("stale", None)
                self._status_t[dev] = time.monotonic()
            self._broadcast("status", {"device": dev, "online": info["online"], "status": data})
        elif kind == "state":
            with self._lock:
                self._device(dev)["state"] = data
            self._broadcast("state", {"device": dev, "state": data})

    def sweep(self, now: float | None = None) -> None:
        """Mark online statuses nobody refreshed as stale, forget devices not heard for DEVICE_TTL_S."""
        now = time.monotonic() if now is None else now
        stale = []
        with self._lock:
            for dev, t in list(self._heard.items()):
                if now - t > DEVICE_TTL_S:
                    self._forget(dev)
            for dev, t in self._status_t.items():
                info = self.devices[dev]
                beat = info["status"].get("heartbeat") or DEFAULT_HEARTBEAT_S
                if info.get("online") and now - t > max(STALE_HEARTBEATS * beat, MIN_STALE_S):
                    info["online"] = False
                    info["stale"] = True
                    info["status"] = {**info["status"], "reason": "stale: no heartbeat"}
                    stale.append({"device": dev, "online": False, "status": info["status"]})
            gone = list(self._gone)
            self._gone.clear()
        for st in stale:
            self._broadcast("status", st)
        for dev in gone:
            self._broadcast("gone", {"device": dev})

    # -- Server-Sent Events ------------------------------------------------------------
    @staticmethod
    def _sse_bytes(event: str, data: Any) -> bytes:
        return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def _broadcast(self, event: str, data: Any) -> None:
        if not self._clients:
            return
        chunk = self._sse_bytes(event, data)
        for cl in list(self._clients):
            with cl.cond:
                if len(cl.queue) >= CLIENT_BACKLOG or cl.queued_bytes + len(chunk) > CLIENT_BACKLOG_BYTES:
                    cl.overflow = True
                else:
                    cl.queue.append(chunk)
                    cl.queued_bytes += len(chunk)
                cl.cond.notify_all()

    def _flush_loop(self) -> None:
        period = 1.0 / POSES_HZ
        next_sweep = time.monotonic() + SWEEP_S
        while not self._stop.wait(period):
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            if dirty:
                self._broadcast("poses", list(dirty.values()))
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_S
                self.sweep()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.snapshot_unlocked()

    def _sse(self, h: Handler) -> None:
        cl = _Client()
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-store")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        with self._lock:  # the snapshot and the registration together: nothing falls between them
            snap = self.snapshot_unlocked()
            self._clients.add(cl)
        try:
            h.wfile.write(b"retry: 2000\n\n" + self._sse_bytes("snapshot", snap))
            h.wfile.flush()
            while not self._stop.is_set():
                with cl.cond:
                    if not cl.queue and not cl.overflow:
                        cl.cond.wait(SSE_KEEPALIVE_S)
                    if cl.overflow:
                        log.warning(
                            "a browser fell %d messages or %d MB behind; it reconnects with a fresh snapshot",
                            CLIENT_BACKLOG,
                            CLIENT_BACKLOG_BYTES >> 20,
                        )
                        return
                    chunks = list(cl.queue)
                    cl.queue.clear()
                    cl.queued_bytes = 0
                h.wfile.write(b"".join(chunks) if chunks else b": keepalive\n\n")
                h.wfile.flush()
        finally:
            self._clients.discard(cl)

    def snapshot_unlocked(self) -> dict[str, Any]:
        devices = [dict(d) for d in sorted(self.devices.values(), key=lambda d: d["device"])]
        return {
            "broker": f"{self.mcfg.host}:{self.mcfg.port}",
            "connected": self.connected,
            "filter": self.filter,
            "devices": devices,
            "events": list(self.events),
            "messages": dict(self.counts),
        }
