"""The paho client edgepose uses, publishing (the sink) and subscribing (``listen``, the fleet page) alike."""

from __future__ import annotations

import logging
import os
import ssl
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..errors import ConfigError
from .config import MqttConfig

log = logging.getLogger(__name__)

#: Largest MQTT packet taken from a broker: announced in CONNECT under MQTT 5 (MaximumPacketSize), enforced
#: by :class:`BoundedClient` under both versions (subscribers check payloads at 1 MiB, edgepose.mqtt.inbound).
MAX_INCOMING_PACKET = 2 << 20


class BoundedClient(mqtt.Client):
    """paho's client, refusing a packet a broker announces beyond :data:`MAX_INCOMING_PACKET`.

    paho reads whatever remaining length a broker announces (up to 256 MB) into memory; a broken or hostile
    broker could so fill a Pi's RAM. Here the connection is dropped instead, with one line (at most one a
    minute), and paho reconnects with its back-off; events wait in the outbox meanwhile.
    """

    _too_large_said = 0.0

    def _sock_recv(self, bufsize: int) -> bytes:
        packet = self._in_packet
        if packet["have_remaining"] and packet["remaining_length"] > MAX_INCOMING_PACKET:
            now = time.monotonic()
            if now - self._too_large_said > 60.0:
                self._too_large_said = now
                log.warning(
                    "MQTT: broker %s:%d announced a packet of %d bytes, over the %d this client takes; dropping the "
                    "connection and reconnecting with back-off. Fix: check that %s:%d is the MQTT broker you mean "
                    "(and its message_size_limit).",
                    self._host,
                    self._port,
                    packet["remaining_length"],
                    MAX_INCOMING_PACKET,
                    self._host,
                    self._port,
                )
            raise OSError(f"packet of {packet['remaining_length']} bytes announced, over {MAX_INCOMING_PACKET}")
        return super()._sock_recv(bufsize)


def new_client(cfg: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client with the protocol, transport, credentials and TLS of ``cfg`` (not connected)."""
    v5 = cfg.protocol == "5"
    client = BoundedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        transport=cfg.transport,
        clean_session=None if v5 else True,
    )
    paho_log = logging.getLogger("edgepose.mqtt.paho")
    if paho_log.isEnabledFor(logging.DEBUG):
        # paho logs every failed reconnect at ERROR; our own messages explain them once, with the fix.
        client.enable_logger(paho_log)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.resolved_password())
    if cfg.tls.enabled:
        for field in ("ca_file", "cert_file", "key_file"):
            path = getattr(cfg.tls, field)
            if path and not os.path.isfile(os.path.expanduser(path)):
                raise ConfigError(
                    f"mqtt.tls.{field} {path} does not exist.", f"point mqtt.tls.{field} at the PEM file."
                )

        def exp(p: str | None) -> str | None:
            return os.path.expanduser(p) if p else None

        try:
            client.tls_set(
                ca_certs=exp(cfg.tls.ca_file),
                certfile=exp(cfg.tls.cert_file),
                keyfile=exp(cfg.tls.key_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(
                f"cannot load the TLS files of [mqtt.tls]: {e}.",
                "check that ca_file, cert_file and key_file are PEM and that the key matches the certificate.",
            ) from None
        client.tls_insecure_set(cfg.tls.insecure_hostname)
    return client


def connect_kwargs(cfg: MqttConfig) -> dict[str, Any]:
    # clean_start exists only in MQTT 5; the outbox, not the broker session, keeps our state.
    if cfg.protocol != "5":
        return {}
    props = Properties(PacketTypes.CONNECT)
    props.MaximumPacketSize = MAX_INCOMING_PACKET  # a broker drops bigger messages for us rather than send them
    return {"clean_start": True, "properties": props}
