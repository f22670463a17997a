"""Camera relocalization settings (section ``[relocalization]`` of the device config)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RelocalizationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    #: Run the camera-pose model beside the keypoint model.
    enabled: bool = False
    #: ``.tflite`` exported by ``edgepose reloc train`` (needed when enabled).
    model: str = Field("", description="relocalization .tflite path")
    threads: int = Field(1, ge=1, le=64)
    #: The camera moves slowly compared with people: estimate its pose every Nth frame only.
    every_n_frames: int = Field(10, ge=1, le=100000)

    @model_validator(mode="after")
    def _check(self) -> RelocalizationConfig:
        if self.enabled and not self.model.strip():
            raise ValueError("relocalization is enabled but no model is set; set model = \"path/to/reloc.tflite\"")
        return self
