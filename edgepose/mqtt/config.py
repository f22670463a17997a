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

from pydantic import Field, SecretStr, field_validator, model_validator

from ..config_base import ConfigModel
from ..errors import ConfigError


class TlsConfig(ConfigModel):
    """``[mqtt.tls]``: server verification and optional client certificate."""

    enabled: bool = Field(False, description="Connect over TLS (port 8883 as a rule).")
    ca_file: str | None = Field(
        None, description="CA bundle that signed the broker's certificate; empty = the system's trust store."
    )
    cert_file: str | None = Field(
        None, description="Client certificate and key, for brokers with `require_certificate true`."
    )
    key_file: str | None = Field(None, description="Private key of the client certificate (PEM).")
    insecure_hostname: bool = Field(
        False,
        description="Skip the host-name check (the chain is still verified). Only for brokers reached by IP without a matching SAN.",
    )

    @model_validator(mode="after")
    def _cert_pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (client certificate and its private key)")
        return self


class HomeAssistantConfig(ConfigModel):
    """``[mqtt.homeassistant]``: MQTT discovery (opt-in)."""

    enabled: bool = Field(False, description="Publish Home Assistant MQTT discovery messages for this device.")
    discovery_prefix: str = Field(
        "homeassistant", pattern=r"^[^#+]+$", description="Home Assistant's discovery topic prefix."
    )
    fall_hold: float = Field(
        30.0, gt=0, le=86400, description="Seconds the fall binary sensor stays `on` after a fall with no `end` event."
    )


class MqttConfig(ConfigModel):
    enabled: bool = Field(False, description="Publish over MQTT (edgepose serve).")
    host: str = Field("localhost", min_length=1, max_length=253, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS).")
    transport: Literal["tcp", "websockets"] = Field(
        "tcp", description="tcp, or websockets for brokers behind a web server."
    )
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version: `5` or `3.1.1`.")
    client_id: str | None = Field(
        None, description="Default `edgepose-<device_id>`. Two clients with one id kick each other off the broker."
    )
    keepalive: int = Field(
        30,
        ge=5,
        le=3600,
        description="Seconds between keep-alive pings; the broker declares the device gone after 1.5 of them.",
    )

    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(
        None, description="Broker password (prefer password_env: the file then carries no secret)."
    )
    password_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of an environment variable holding the password (wins over `password`).",
    )
    tls: TlsConfig = Field(TlsConfig(), description="TLS settings.")

    topic_prefix: str = Field(
        "edgepose/{device_id}",
        pattern=r"^[^#+]+$",
        description="Topic prefix; `{device_id}` is replaced. Topics: `<prefix>/poses`, `/events`, `/status`, `/camera_pose`, `/state`.",
    )
    poses_qos: Literal[0, 1] = Field(0, description="QoS of the poses topic (0: a lost frame is replaced by the next).")
    events_qos: Literal[1, 2] = Field(
        1, description="QoS of the events topic (events are kept in the outbox until acknowledged)."
    )
    status_qos: Literal[0, 1, 2] = Field(1, description="QoS of the retained status topic.")
    poses_rate: float = Field(
        0.0, ge=0.0, le=1000.0, description="Highest rate (messages/s) of the `poses` topic; 0 publishes every frame."
    )
    encoding: Literal["json", "binary"] = Field(
        "json",
        description="`json` (default) or `binary` (compact, see edgepose/service/README.md) for `poses`; other topics are always JSON.",
    )
    coord_digits: int = Field(1, ge=0, le=4, description="Decimal places of keypoint coordinates in JSON payloads.")
    homeassistant: HomeAssistantConfig = Field(HomeAssistantConfig(), description="Home Assistant MQTT discovery.")

    outbox_path: str | None = Field(
        None, description="SQLite file of the event outbox; default: `<state dir>/edgepose/outbox-<device_id>.sqlite`."
    )
    outbox_max_events: int = Field(
        10_000,
        ge=10,
        le=10_000_000,
        description="Events the outbox keeps at most (about 330 bytes of disk each). Beyond it, or when the disk is full, "
        "the oldest pending events are dropped first, counted in status (events_dropped) and in the log, never silently.",
    )
    outbox_window: int = Field(
        20, ge=1, le=1000, description="Events handed to the MQTT client at once (the rest wait in the outbox)."
    )
    drain_timeout: float = Field(
        5.0,
        ge=0.0,
        le=3600.0,
        description="Seconds a graceful stop waits for the outbox to drain before announcing offline.",
    )

    backoff_min: float = Field(
        1.0,
        ge=0.1,
        le=3600.0,
        description="Reconnect back-off (seconds): doubles from min to max, reset after a successful connection.",
    )
    backoff_max: float = Field(60.0, ge=0.1, le=86400.0, description="Longest reconnect back-off (seconds).")
    status_interval: float = Field(30.0, ge=1.0, le=86400.0, description="Seconds between `status` heartbeats.")

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_alias(cls, v: Any) -> Any:
        # TOML users write `protocol = 5` as often as `"5"` (5.0 == 5 hashes alike); also accept paho's names.
        aliases = {
            5: "5",
            "v5": "5",
            "mqttv5": "5",
            "311": "3.1.1",
            "v311": "3.1.1",
            "mqttv311": "3.1.1",
            3.11: "3.1.1",
        }
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
        from ..paths import state_dir

        return state_dir() / f"outbox-{device_id}.sqlite"

    def redacted(self) -> dict[str, Any]:
        """A dump safe to log or print: the password is replaced, ``password_env`` names only the variable."""
        d = self.model_dump(mode="json")
        if d.get("password") is not None:
            d["password"] = "**********"
        return d
