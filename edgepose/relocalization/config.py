"""Camera relocalization settings (section ``[relocalization]`` of the device config)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ..config_base import ConfigModel


class RelocalizationConfig(ConfigModel):
    enabled: bool = Field(False, description="Run the camera-pose model beside the keypoint model.")
    model: str = Field("", description="The `.tflite` exported by `edgepose reloc train` (needed when enabled).")
    threads: int = Field(1, ge=1, le=64, description="Interpreter threads of the relocalization model.")
    every_n_frames: int = Field(
        10,
        ge=1,
        le=100000,
        description="The camera moves slowly compared with people: estimate its pose every Nth frame only.",
    )

    @model_validator(mode="after")
    def _check(self) -> RelocalizationConfig:
        if self.enabled and not self.model.strip():
            raise ValueError('relocalization is enabled but no model is set; set model = "path/to/reloc.tflite"')
        return self
