"""Action-recognition settings (section ``[actions]`` of the device config)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ActionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
