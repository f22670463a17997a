"""Reading the devices' topics: ``edgepose listen`` and the fleet page of ``edgepose view`` subscribe through
:class:`Subscriber`.

It owns what both need alike: the paho client with back-off, a ``(problem, fix)`` for every failed attempt, and a
network thread that no message can stop. Each message whose topic is UTF-8 goes to ``handle(topic, payload)``;
a :class:`~.inbound.BadMessage` raised there, or any other error, costs one rate-limited line (:class:`~.inbound.Rejects`)
and the next message is read.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable

from .client import connect_kwargs, new_client
from .config import MqttConfig
from .diagnosis import explain_connect_failure, explain_refusal
from .inbound import BadMessage, Rejects, raw_topic

log = logging.getLogger(__name__)


def _log_failure(problem: str, fix: str) -> None:
    log.error("%s Fix: %s Retrying with back-off.", problem, fix)


class Subscriber:
    """A client subscribed (QoS 1) to ``topic_filter`` on the broker of ``cfg``, from :meth:`start` to :meth:`stop`.

    ``report(problem, fix)`` hears every failed attempt (default: an ERROR line); ``failure`` keeps the last one.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        topic_filter: str,
        handle: Callable[[str, bytes], None],
        *,
        who: str,
        report: Callable[[str, str], None] = _log_failure,
    ):
        self.cfg = cfg
        self.filter = topic_filter
        self.handle = handle
        self.who = who
        self.report = report
        self.rejects = Rejects(who)
        self.connected = threading.Event()
        self.failure: tuple[str, str] | None = None
        self._client = new_client(cfg, client_id)
        self._client.reconnect_delay_set(cfg.backoff_min, cfg.backoff_max)  # type: ignore[arg-type]  # floats work
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> Subscriber:
        """Connect in the background (returns at once; paho's network thread keeps retrying)."""
        self._client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive, **connect_kwargs(self.cfg)
        )
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def _failed(self, problem: str, fix: str) -> None:
        self.failure = (problem, fix)
        self.report(problem, fix)

    # -- paho's network thread ------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._failed(*explain_refusal(reason, self.cfg.host, self.cfg.port, self.cfg))
            return
        client.subscribe(self.filter, qos=1)
        log.info("%s: subscribed to %s on %s:%d", self.who, self.filter, self.cfg.host, self.cfg.port)
        self.connected.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this inside its `except OSError:`, so the exception is still current.
        self._failed(*explain_connect_failure(sys.exc_info()[1], self.cfg.host, self.cfg.port, self.cfg.tls.enabled))

    def _on_disconnect(self, *args: Any) -> None:
        self.connected.clear()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            topic = msg.topic  # paho decodes it as UTF-8 here
        except UnicodeDecodeError:
            self._reject(raw_topic(msg), "its topic is not UTF-8")
            return
        try:
            self.handle(topic, bytes(msg.payload))
        except BadMessage as e:
            self._reject(topic, str(e))
        except Exception as e:  # a case the checks did not foresee: still one line, and the next message is read
            log.debug("message on %s", topic, exc_info=True)
            self._reject(topic, f"{type(e).__name__}: {str(e)[:100]}")

    def _reject(self, topic: str, reason: str) -> None:
        line = self.rejects.note(topic, reason)
        if line is not None:
            log.warning("%s", line)
