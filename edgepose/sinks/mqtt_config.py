"""MQTT settings (section ``[mqtt]`` of the device config)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
