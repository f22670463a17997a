"""Publish frames, action events and status to an MQTT broker (paho-mqtt 2.x, MQTT 5 or 3.1.1).

Topics under ``mqtt.topic_prefix`` (default ``edgepose/<device_id>``):

=============  ====  ========  ==============================================
topic          QoS   retained  what
=============  ====  ========  ==============================================
``poses``      0     no        every frame (or ``poses_rate``); dropped and counted while disconnected
``events``     1     no        one action event per message, from the durable outbox, in order
``status``     1     yes       ``online`` + heartbeat; ``offline`` on stop and as the Last Will
``state``      1     yes       people count, fall, ongoing actions; on change (Home Assistant reads it)
``camera_pose`` 0    no        relocalization output, when that model runs
=============  ====  ========  ==============================================

The sink never blocks the frame loop on the network: paho's network thread
connects and reconnects (exponential back-off ``backoff_min``..``backoff_max``,
reset only after a successful CONNACK, so bad credentials never spin), and an
outbox thread hands stored events to paho a window at a time and deletes each
one when its PUBACK arrives.
"""

from __future__ import annotations

import logging
import math
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import __version__
from ..net import is_loopback
from ..types import ActionEvent, FrameResult
from . import homeassistant, payloads
from .client import connect_kwargs, new_client
from .config import MqttConfig
from .diagnosis import CONNACK_TIMEOUT, explain_connect_failure, explain_no_connack, explain_refusal, speaks_tls
from .outbox import Outbox, OutboxError
from .state import StateSummary

log = logging.getLogger(__name__)

#: QoS-0 messages waiting in paho's socket queue above which ``poses`` are dropped
#: (a slow link must not grow memory without bound on a months-long run).
MAX_QUEUED_POSES = 200
#: A retained ``online`` expires (MQTT 5) after this many heartbeat periods without a new one.
STATUS_EXPIRY_PERIODS = 3
#: Connections lost this soon (s) after their CONNACK, this many times in a row, mean another client with the
#: same client id (a second `serve` with this device_id): both then reconnect only every backoff_max seconds.
FLAP_HOLD_S = 5.0
FLAP_COUNT = 3


@dataclass
class SinkStats:
    poses_sent: int = 0
    poses_dropped: int = 0
    poses_decimated: int = 0
    poses_bytes: int = 0
    events_queued: int = 0
    events_sent: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0


def _event_payload(event: ActionEvent, device_id: str, frame: int | None, ts: float) -> Callable[[int], bytes]:
    """The payload of one event, built once the outbox gives it its row id (the event's seq)."""
    return lambda seq: payloads.dumps(payloads.event_payload(event, device_id, seq, frame, ts))


class MqttSink:
    """Publishes :class:`FrameResult` objects; safe to call from the frame loop (never blocks on the network).

    ``status_fields`` is called for every ``status`` message and returns the
    service's own fields (uptime, fps, camera state...).
    """

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        *,
        model: str | None = None,
        outbox: Outbox | None = None,
        status_fields: Callable[[], dict[str, Any]] | None = None,
    ):
        self.cfg = config
        self.device_id = device_id
        self.model = model
        self.status_fields = status_fields
        self.stats = SinkStats()
        self.last_error: str | None = None
        self.topics = {
            name: config.topic(device_id, name) for name in ("poses", "events", "status", "camera_pose", "state")
        }
        # Settings resolved once and one buffer reused: publish_frame runs on one thread (the frame loop).
        self._encode_poses = payloads.PosesEncoder(config.encoding, device_id, config.coord_digits)

        self._connected = threading.Event()
        self._status_missed = False
        self._closing = False
        self._failures_in_row = 0
        self._attempt = 0  # TCP connections made; the CONNACK watchdog and the diagnosis name the one they belong to
        self._attempt_reported = True
        self._connack_timer: threading.Timer | None = None
        self._connected_at = 0.0
        self._short_in_row = 0
        self._flap_said = False
        self._discovery = homeassistant.DiscoveryPacer(self._discovery_round)
        self._wake = threading.Condition()
        self._pump_stop = False
        self._pump: threading.Thread | None = None
        # The sender (outbox thread) owns these under _send_lock; on_connect rebuilds them. on_publish runs
        # with paho's message lock held, so it only records the mid under the small _acks_lock.
        self._send_lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row, for this connection only
        self._last_handed = 0  # highest outbox row handed to paho on this connection
        self._acks_lock = threading.Lock()
        self._acked_mids: set[int] = set()
        self._next_poses = 0.0
        self._poses_period = 1.0 / config.poses_rate if config.poses_rate > 0 else 0.0
        #: The ``state`` topic's summary (people / fall / actions).
        self.state = StateSummary(config.homeassistant.fall_hold)
        #: Time source of the poses rate limit (monotonic seconds).
        self.clock: Callable[[], float] = time.monotonic
        self._client = self._make_client()  # config errors (TLS files, password variable) before any file is opened
        self.outbox = (
            outbox if outbox is not None else Outbox(config.resolved_outbox_path(device_id), config.outbox_max_events)
        )
        self._events_unstored = 0  # events the outbox could not take at all (an unwritable file): counted, logged
        self._drops_logged = 0
        self._drops_logged_at = 0.0

    # -- setup ---------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client = new_client(cfg, cfg.resolved_client_id(self.device_id))
        client.reconnect_delay_set(min_delay=cfg.backoff_min, max_delay=cfg.backoff_max)  # type: ignore[arg-type]  # floats work
        self._set_will(client)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_socket_open = self._on_socket_open
        client.on_disconnect = self._on_disconnect
        # on_publish is set only while events await their PUBACK (_pump_once): paho calls it for every
        # QoS-0 pose too, after building a reason code and properties for it in the network thread, which
        # halved the sink's publish rate against a client without it.
        client.on_message = self._on_message
        return client

    def _set_will(self, client: mqtt.Client) -> None:
        # ts = when this connection is made (not the process start): the broker sends the Will when it goes.
        will = payloads.status_payload(
            self.device_id, "offline", time.time(), reason="connection lost", heartbeat=self.cfg.status_interval
        )
        client.will_set(self.topics["status"], payloads.dumps(will), qos=self.cfg.status_qos, retain=True)

    def _status_properties(self, state: str) -> Properties | None:
        """MQTT 5: a retained ``online`` expires unless the next heartbeat replaces it, so a device that died while
        the broker was away (no Last Will then) does not stay ``online`` for ever. ``offline`` never expires."""
        if self.cfg.protocol != "5" or state != "online":
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = math.ceil(STATUS_EXPIRY_PERIODS * self.cfg.status_interval)
        return props

    def start(self) -> MqttSink:
        """Connect in the background (returns at once; the network thread keeps retrying)."""
        cfg = self.cfg
        if cfg.username and not cfg.tls.enabled and not is_loopback(cfg.host):
            log.warning(
                "MQTT: the password of user %s goes unencrypted over plain %s to %s:%d. Fix: enable [mqtt.tls] "
                "(the broker's TLS port, usually 8883), or keep the broker on this device.",
                cfg.username,
                "WebSocket" if cfg.transport == "websockets" else "TCP",
                cfg.host,
                cfg.port,
            )
        log.info(
            "MQTT: connecting to %s:%d (MQTT %s%s%s), topics %s/#",
            cfg.host,
            cfg.port,
            cfg.protocol,
            ", TLS" if cfg.tls.enabled else "",
            f", user {cfg.username}" if cfg.username else "",
            cfg.prefix(self.device_id),
        )
        self._client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive, **connect_kwargs(cfg))
        self._client.loop_start()
        self._pump = threading.Thread(target=self._pump_loop, name="edgepose-outbox", daemon=True)
        self._pump.start()
        return self

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    # -- paho callbacks (network thread) ----------------------------------------
    def _guard(fn: Callable) -> Callable:  # type: ignore[misc]
        # An exception escaping a paho callback would kill the network thread: log it instead.
        def wrapper(self: MqttSink, *args: Any) -> None:
            try:
                fn(self, *args)
            except Exception:
                log.exception("MQTT: error in %s", fn.__name__)

        wrapper.__name__ = fn.__name__
        return wrapper

    def _next_delay(self) -> float:
        return min(self.cfg.backoff_min * 2 ** max(self._failures_in_row - 1, 0), self.cfg.backoff_max)

    def _report_failure(self, problem: str, fix: str) -> None:
        self._failures_in_row += 1
        self.stats.connect_failures += 1
        msg = f"{problem} Fix: {fix}"
        # Same error again: one line per attempt (the back-off bounds them), full text when it changes.
        if msg != self.last_error:
            log.error(
                "%s Retrying with back-off (next in %.1fs, at most every %gs).",
                msg,
                self._next_delay(),
                self.cfg.backoff_max,
            )
        else:
            log.warning(
                "MQTT: still failing (attempt %d): %s Next retry in %.1fs.",
                self._failures_in_row,
                problem,
                self._next_delay(),
            )
        self.last_error = msg

    @_guard
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._attempt_reported = True  # a CONNACK came: the attempt speaks for itself
        if self._connack_timer is not None:
            self._connack_timer.cancel()
        if reason.is_failure:
            self._report_failure(*explain_refusal(reason, self.cfg.host, self.cfg.port, self.cfg))
            return
        self._failures_in_row = 0
        self.stats.connects += 1
        self._connected_at = time.monotonic()
        if self.last_error:
            log.warning("MQTT: connected to %s:%d (recovered from: %s)", self.cfg.host, self.cfg.port, self.last_error)
        else:
            log.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.port)
        self.last_error = None
        self._rebuild_inflight(client)
        # "online" first (it overwrites the retained Last Will of a lost connection), before the frame
        # loop sees the connection and publishes anything else. It carries the current state, so status
        # changes missed during the outage need no second message.
        self._status_missed = False
        self._send_status("online")
        if self.cfg.homeassistant.enabled:
            client.subscribe(homeassistant.birth_topic(self.cfg), qos=0)
            self._publish_discovery()
            self._discovery.sent()
        self._connected.set()
        if self._status_missed:
            # A status change (camera lost, say) came between the "online" above and now.
            self._status_missed = False
            self._send_status("online")
        self._publish_state(force=True)
        with self._wake:
            self._wake.notify_all()

    @_guard
    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError:`, so the exception is still current.
        exc = sys.exc_info()[1]
        self._report_failure(*explain_connect_failure(exc, self.cfg.host, self.cfg.port, self.cfg.tls.enabled))

    @_guard
    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        self._set_will(client)

    @_guard
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # A listener that accepts and then never answers would otherwise hold paho for 1.5 keepalives, silently.
        self._attempt += 1
        self._attempt_reported = False
        if self._connack_timer is not None:
            self._connack_timer.cancel()
        self._connack_timer = threading.Timer(CONNACK_TIMEOUT, self._connack_overdue, args=(self._attempt,))
        self._connack_timer.daemon = True
        self._connack_timer.start()

    def _connack_overdue(self, attempt: int) -> None:
        if attempt != self._attempt or self._attempt_reported or self._closing:
            return
        self._attempt_reported = True
        tls_port = not self.cfg.tls.enabled and speaks_tls(self.cfg.host, self.cfg.port)
        self._report_failure(*explain_no_connack(self.cfg.host, self.cfg.port, closed=False, tls_port=tls_port))
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # paho sees the loss and reconnects with its back-off
            except OSError:
                pass

    def _diagnose_closed(self, attempt: int) -> None:
        # Off the network thread: the TLS probe takes a round trip or its timeout.
        tls_port = not self.cfg.tls.enabled and speaks_tls(self.cfg.host, self.cfg.port)
        if not self._connected.is_set():
            self._report_failure(*explain_no_connack(self.cfg.host, self.cfg.port, closed=True, tls_port=tls_port))

    def _note_flap(self, client: mqtt.Client) -> None:
        """A connection lost within FLAP_HOLD_S of its CONNACK FLAP_COUNT times in a row: two clients with one client id
        kick each other off. Said once; from then on this one retries only every backoff_max (the twins swap at most
        that often instead of every backoff_min)."""
        held = time.monotonic() - self._connected_at
        self._short_in_row = self._short_in_row + 1 if held < FLAP_HOLD_S else 0
        if self._short_in_row < FLAP_COUNT or self._flap_said:
            return
        self._flap_said = True
        client.reconnect_delay_set(min_delay=self.cfg.backoff_max, max_delay=self.cfg.backoff_max)  # type: ignore[arg-type]
        log.error(
            "MQTT: %s:%d dropped this device's connection %d times within %g s of connecting: another client most "
            "likely uses its client id %r (a second edgepose serve with device_id = %r?). Retrying only every %g s "
            "(mqtt.backoff_max) from now on; events wait in the outbox. Fix: give each device its own device_id "
            "(or mqtt.client_id), and stop the duplicate.",
            self.cfg.host,
            self.cfg.port,
            FLAP_COUNT,
            FLAP_HOLD_S,
            self.cfg.resolved_client_id(self.device_id),
            self.device_id,
            self.cfg.backoff_max,
        )

    @_guard
    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if self._closing:
            return
        if was:
            self._note_flap(client)
            self.stats.disconnects += 1
            hint = ""
            if "taken over" in str(reason).lower():
                hint = (
                    f" Another client connected with this device's client id {self.cfg.resolved_client_id(self.device_id)!r}:"
                    " give each device its own mqtt.client_id (or device_id)."
                )
            log.warning(
                "MQTT: connection to %s:%d lost (%s); reconnecting with back-off, events wait in the outbox.%s",
                self.cfg.host,
                self.cfg.port,
                reason,
                hint,
            )
        elif not self._attempt_reported:
            # Closed after the TCP accept and before any CONNACK: a listener that is not plain MQTT.
            self._attempt_reported = True
            if self._connack_timer is not None:
                self._connack_timer.cancel()
            threading.Thread(
                target=self._diagnose_closed, args=(self._attempt,), name="edgepose-mqtt-diagnose", daemon=True
            ).start()

    @_guard
    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # paho calls this for every QoS-0 pose too: wake the outbox thread only when events await their PUBACK.
        # Every mid is recorded: a PUBACK can beat the outbox thread's own note of the mid it was just given.
        # The outbox thread keeps the ones it handed out and forgets the rest (poses) on each pass.
        if getattr(reason, "is_failure", False):
            return  # MQTT 5 PUBACK with an error (quota, not authorised): the row stays and goes again on reconnect
        with self._acks_lock:
            self._acked_mids.add(mid)
        if mid in self._inflight:  # a racy hint only (no _send_lock here): wake the outbox thread for events
            with self._wake:
                self._wake.notify_all()

    @_guard
    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if (
            self.cfg.homeassistant.enabled
            and msg.topic == homeassistant.birth_topic(self.cfg)
            and msg.payload == b"online"
        ):
            self._discovery.wanted()

    def _discovery_round(self) -> None:
        if not self._connected.is_set() or self._closing:
            return
        log.info("MQTT: Home Assistant came online; re-sending discovery")
        self._publish_discovery()
        self._publish_state(force=True)

    # -- outbox pump (own thread) ----------------------------------------------
    # The outbox, not paho, owns every event until its PUBACK: paho's copies of events die with each
    # connection (purged in _rebuild_inflight) and the rows are handed again, in order, on the next one.
    # That makes the sender indifferent to paho's state when a publish races a lost socket (paho then marks
    # the message "no connection" for good) or when another client takes over the client id.
    def _pump_loop(self) -> None:
        while True:
            with self._wake:
                if self._pump_stop:
                    return
                self._wake.wait(timeout=0.5)
                if self._pump_stop:
                    return
            try:
                self._pump_once()
            except Exception:  # keep pumping; the rows stay in the outbox
                log.exception("MQTT: outbox pump error")
                time.sleep(1.0)

    def _take_acks(self) -> list[int]:
        """Outbox rows whose PUBACK arrived (call with _send_lock held)."""
        with self._acks_lock:
            mids, self._acked_mids = self._acked_mids, set()
        return [self._inflight.pop(mid) for mid in mids if mid in self._inflight]

    def _retire(self, rows: list[int]) -> None:
        if rows:
            self.stats.events_sent += len(rows)  # before the delete: whoever sees the outbox empty sees the count
            self.outbox.ack_many(rows)

    def _pump_once(self) -> None:
        with self._send_lock:
            self._retire(self._take_acks())
            client = self._client
            if not self._inflight and client.on_publish is not None:
                client.on_publish = None  # no PUBACK awaited: poses go without a callback each
            room = self.cfg.outbox_window - len(self._inflight)
            if room <= 0 or not self._connected.is_set():
                return
            for item in self.outbox.pending(after_id=self._last_handed, limit=room):
                if client.on_publish is None:  # before the publish: its PUBACK can come before publish() returns
                    client.on_publish = self._on_publish
                info = client.publish(item.topic, item.payload, qos=item.qos)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    # QUEUE_SIZE: not queued; NO_CONN: the socket just went, and the next connect purges and
                    # re-hands it. Either way the row is still pending: try again later, in order.
                    break
                self._inflight[info.mid] = item.id
                self._last_handed = item.id

    def _rebuild_inflight(self, client: mqtt.Client) -> None:
        """On each CONNACK, before paho re-sends its stored messages: forget what paho kept from the lost
        connection and start the events' hand-over again from the oldest pending row (rows whose PUBACK already
        arrived are retired first). Status, state and discovery go out fresh from on_connect, so an old
        heartbeat re-sent by paho can neither follow the new ``online`` nor overwrite the retained state."""
        with self._send_lock:
            self._retire(self._take_acks())
            with client._out_message_mutex:  # paho keeps unacknowledged messages across reconnects
                client._out_messages.clear()
            self._inflight.clear()
            with self._acks_lock:
                self._acked_mids.clear()
            self._last_handed = 0

    def _kick(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # -- publishing (frame loop) -------------------------------------------------
    def publish_frame(self, result: FrameResult) -> None:
        """Poses (rate-limited, QoS 0), events (outbox, QoS 1), camera pose and the ``state`` summary of one frame."""
        self.publish_poses(result)
        if result.events:
            self.publish_events(result.events, frame=result.index, ts=result.timestamp)
        if "camera_pose" in result.extra and self._connected.is_set():
            self._client.publish(
                self.topics["camera_pose"], payloads.dumps(payloads.camera_pose_payload(result, self.device_id)), qos=0
            )
        self.state.note_frame(result)
        self._publish_state()

    def encode_poses(self, result: FrameResult) -> bytes:
        """The ``poses`` payload of ``result`` in the configured encoding (call from the publishing thread)."""
        return self._encode_poses(result)

    def publish_poses(self, result: FrameResult) -> bool:
        """Publish the ``poses`` message of one frame; False when decimated or dropped (both counted)."""
        if self._poses_period:
            now = self.clock()
            # 5 % slack so that 30 FPS decimated to 10/s keeps every third frame despite jitter.
            if now < self._next_poses - 0.05 * self._poses_period:
                self.stats.poses_decimated += 1
                return False
            behind = now - self._next_poses > self._poses_period
            self._next_poses = now + self._poses_period if behind else self._next_poses + self._poses_period
        if not self._connected.is_set() or len(getattr(self._client, "_out_packet", ())) > MAX_QUEUED_POSES:
            self.stats.poses_dropped += 1
            return False
        data = self._encode_poses(result)
        info = self._client.publish(self.topics["poses"], data, qos=self.cfg.poses_qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.stats.poses_dropped += 1
            return False
        self.stats.poses_sent += 1
        self.stats.poses_bytes += len(data)
        return True

    def publish_events(
        self, events: Iterable[ActionEvent], frame: int | None = None, ts: float | None = None
    ) -> list[int]:
        """Store events durably in the outbox (returns their ``seq``); they are sent in order whenever connected."""
        events = list(events)
        if not events:
            return []
        ts = time.time() if ts is None else ts
        topic, qos, dev = self.topics["events"], self.cfg.events_qos, self.device_id
        try:
            ids = self.outbox.put_many([(topic, _event_payload(e, dev, frame, ts), qos) for e in events])
        except OutboxError as e:
            # The frame loop goes on (poses and status keep flowing); the loss is counted and logged.
            ids = []
            self._events_unstored += len(events)
            log.error("%s", e)
        self.stats.events_queued += len(ids)
        self._log_drops()
        self.state.note_events(events)
        self._kick()
        return ids

    @property
    def people(self) -> int:
        """People in the latest frame."""
        return self.state.people

    @property
    def events_dropped(self) -> int:
        """Events dropped unsent: oldest first at the outbox cap or on a full disk, or not storable at all."""
        return self.outbox.dropped + self._events_unstored

    def _log_drops(self, force: bool = False) -> None:
        dropped = self.events_dropped
        if dropped == self._drops_logged:
            return
        now = time.monotonic()
        # The first drop at once, then at most one line every 10 s with the running total.
        if force or self._drops_logged == 0 or now - self._drops_logged_at >= 10.0:
            why = ", ".join(f"{n} {reason}" for reason, n in self.outbox.drop_reasons.items())
            if self._events_unstored:
                why = ", ".join(filter(None, [why, f"{self._events_unstored} not storable"]))
            log.warning(
                "MQTT: %d event(s) dropped unsent so far, oldest first (%s); %d pending in %s",
                dropped,
                why,
                len(self.outbox),
                self.outbox.path,
            )
            self._drops_logged, self._drops_logged_at = dropped, now

    def status_payload(self, state: str = "online", **extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "version": __version__,
            "model": self.model,
            "protocol": self.cfg.protocol,
            "encoding": self.cfg.encoding,
            "poses_sent": self.stats.poses_sent,
            "poses_dropped": self.stats.poses_dropped,
            "poses_decimated": self.stats.poses_decimated,
            "events_sent": self.stats.events_sent,
            "events_pending": len(self.outbox),
            "events_dropped": self.events_dropped,
            "heartbeat": self.cfg.status_interval,
            "people": self.state.people,
        }
        if self.status_fields is not None:
            try:
                fields.update(self.status_fields())
            except Exception:  # a status without service fields beats none
                log.exception("status fields")
        fields.update(extra)
        return payloads.status_payload(self.device_id, state, time.time(), **fields)

    def publish_status(self, state: str = "online", **extra: Any) -> mqtt.MQTTMessageInfo | None:
        """Retained ``status`` message (the heartbeat); None while disconnected (the Last Will speaks then)."""
        if not self._connected.is_set():
            self._status_missed = True  # sent again on (re)connect
            return None
        return self._send_status(state, **extra)

    def _send_status(self, state: str, **extra: Any) -> mqtt.MQTTMessageInfo:
        return self._client.publish(
            self.topics["status"],
            payloads.dumps(self.status_payload(state, **extra)),
            qos=self.cfg.status_qos,
            retain=True,
            properties=self._status_properties(state),
        )

    def _publish_state(self, force: bool = False) -> None:
        if not self._connected.is_set():
            return
        key = self.state.due(force)
        if key is not None:
            st = payloads.state_payload(self.device_id, time.time(), *key)
            self._client.publish(self.topics["state"], payloads.dumps(st), qos=1, retain=True)

    def _publish_discovery(self) -> None:
        for topic, payload in homeassistant.discovery_messages(self.cfg, self.device_id, __version__, self.model):
            self._client.publish(topic, payloads.dumps(payload), qos=1, retain=True)

    # -- shutdown ------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until every stored event is acknowledged (or ``timeout``); True when the outbox is empty."""
        deadline = time.monotonic() + timeout
        while True:
            self._kick()
            if len(self.outbox) == 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self._connected.is_set():
                return len(self.outbox) == 0
            time.sleep(min(0.02, left))

    def close(self, reason: str = "stopped", timeout: float | None = None) -> bool:
        """Graceful stop: send pending events, announce ``offline`` (retained), disconnect. True if the outbox drained."""
        timeout = self.cfg.drain_timeout if timeout is None else timeout
        drained = self.drain(timeout) if self._connected.is_set() else len(self.outbox) == 0
        if not drained:
            log.warning(
                "MQTT: %d event(s) stay in the outbox %s and are sent at the next start",
                len(self.outbox),
                self.outbox.path,
            )
        self._closing = True
        info = self.publish_status("offline", reason=reason)
        if info is not None:
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        if self._connack_timer is not None:
            self._connack_timer.cancel()
        self._discovery.cancel()
        with self._wake:
            self._pump_stop = True
            self._wake.notify_all()
        if self._pump is not None:
            self._pump.join(timeout=2.0)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self.outbox.close()
        return drained

    def abort(self) -> None:
        """Stop without a goodbye (tests and fatal errors): the broker sends the Last Will."""
        self._closing = True
        with self._wake:
            self._pump_stop = True
            self._wake.notify_all()
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # TLS sockets too; paho's other socket-likes have no shutdown
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._client.loop_stop()
        self.outbox.close()
