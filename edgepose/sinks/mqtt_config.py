"""MQTT and device-service settings (section ``[mqtt]`` of the device config).

Everything the long-running service needs lives here (broker, TLS, topics,
QoS, payload encoding, Home Assistant discovery, the event outbox, back-off
and heartbeat), so ``edgepose serve`` needs no second section.

Secrets: ``password`` is a :class:`pydantic.SecretStr` (shown as ``**********``
in any dump or log); prefer ``password_env``, the name of an environment
variable holding it, so the file itself carries no secret.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ..errors import ConfigError


class TlsConfig(BaseModel):
    """``[mqtt.tls]``: server verification and optional client certificate."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: CA bundle that signed the broker's certificate; empty = the system's trust store.
    ca_file: str | None = None
    #: Client certificate and key, for brokers with ``require_certificate true``.
    cert_file: str | None = None
    key_file: str | None = None
    #: Skip the host-name check (the chain is still verified). Only for brokers reached by IP without a matching SAN.
    insecure_hostname: bool = False

    @model_validator(mode="after")
    def _cert_pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (client certificate and its private key)")
        return self


class HomeAssistantConfig(BaseModel):
    """``[mqtt.homeassistant]``: MQTT discovery (opt-in)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+]+$")
    #: Seconds the fall binary sensor stays ``on`` after a fall with no ``end`` event.
    fall_hold: float = Field(30.0, gt=0)


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    transport: Literal["tcp", "websockets"] = "tcp"
    #: MQTT protocol version: ``5`` or ``3.1.1``.
    protocol: Literal["5", "3.1.1"] = "5"
    #: Default ``edgepose-<device_id>``. Two clients with one id kick each other off the broker.
    client_id: str | None = None
    keepalive: int = Field(30, ge=5, le=3600)

    username: str | None = None
    password: SecretStr | None = None
    #: Name of an environment variable holding the password (wins over ``password``).
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    tls: TlsConfig = TlsConfig()

    #: Topic prefix; ``{device_id}`` is replaced. Topics: ``<prefix>/poses``, ``/events``, ``/status``, ``/camera_pose``, ``/state``.
    topic_prefix: str = Field("edgepose/{device_id}", pattern=r"^[^#+]+$")
    poses_qos: Literal[0, 1] = 0
    events_qos: Literal[1, 2] = 1
    status_qos: Literal[0, 1, 2] = 1
    #: Highest rate (messages/s) of the ``poses`` topic; 0 publishes every frame.
    poses_rate: float = Field(0.0, ge=0.0)
    #: ``json`` (default) or ``binary`` (compact, see edgepose/service/README.md) for ``poses``; other topics are always JSON.
    encoding: Literal["json", "binary"] = "json"
    #: Decimal places of keypoint coordinates in JSON payloads.
    coord_digits: int = Field(1, ge=0, le=4)
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()

    #: SQLite file of the event outbox; default: ``<state dir>/edgepose/outbox-<device_id>.sqlite``.
    outbox_path: str | None = None
    outbox_max_events: int = Field(
        10_000, ge=10,
        description="Events the outbox keeps at most (about 330 bytes of disk each). Beyond it, or when the disk is full, "
        "the oldest pending events are dropped first, counted in status (events_dropped) and in the log, never silently.",
    )
    #: Events handed to the MQTT client at once (the rest wait in the outbox).
    outbox_window: int = Field(20, ge=1, le=1000)
    #: Seconds a graceful stop waits for the outbox to drain before announcing offline.
    drain_timeout: float = Field(5.0, ge=0.0)

    #: Reconnect back-off (seconds): doubles from min to max, reset after a successful connection.
    backoff_min: float = Field(1.0, gt=0)
    backoff_max: float = Field(60.0, gt=0)
    #: Seconds between ``status`` heartbeats.
    status_interval: float = Field(30.0, gt=0)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_alias(cls, v: Any) -> Any:
        # TOML users write `protocol = 5` as often as `"5"` (5.0 == 5 hashes alike); also accept paho's names.
        aliases = {5: "5", "v5": "5", "mqttv5": "5", "311": "3.1.1", "v311": "3.1.1", "mqttv311": "3.1.1", 3.11: "3.1.1"}
        key = v.lower() if isinstance(v, str) else v
        return aliases.get(key, v)

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.backoff_max < self.backoff_min:
            raise ValueError(f"backoff_max ({self.backoff_max}) must be at least backoff_min ({self.backoff_min})")
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not; set mqtt.username too")
        return self

    # -- derived values -------------------------------------------------
    def prefix(self, device_id: str) -> str:
        return self.topic_prefix.replace("{device_id}", device_id).rstrip("/")

    def topic(self, device_id: str, name: str) -> str:
        return f"{self.prefix(device_id)}/{name}"

    def resolved_client_id(self, device_id: str) -> str:
        return self.client_id or f"edgepose-{device_id}"

    def resolved_password(self) -> str | None:
        """The password, from ``password_env`` if set, else ``password``; never logged."""
        if self.password_env:
            val = os.environ.get(self.password_env)
            if val is None:
                raise ConfigError(
                    f"mqtt.password_env names the environment variable {self.password_env}, which is not set.",
                    f"export {self.password_env}=... (e.g. EnvironmentFile= in the systemd unit) or remove password_env.",
                )
            return val
        return self.password.get_secret_value() if self.password is not None else None

    def resolved_outbox_path(self, device_id: str) -> Path:
        if self.outbox_path:
            return Path(self.outbox_path).expanduser()
        from platformdirs import user_state_dir

        return Path(user_state_dir("edgepose")) / f"outbox-{device_id}.sqlite"

    def redacted(self) -> dict[str, Any]:
        """A dump safe to log or print: the password is replaced, ``password_env`` names only the variable."""
        d = self.model_dump(mode="json")
        if d.get("password") is not None:
            d["password"] = "**********"
        return d
