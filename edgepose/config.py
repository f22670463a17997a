"""The one configuration object, validated when it is loaded.

A device config is a TOML file with one table per section; every section is a
pydantic model owned by the module that uses it. An invalid value is reported
as one line naming the field and what is allowed.
"""
from __future__ import annotations

import difflib
import sys
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .actions.config import ActionsConfig
from .errors import ConfigError
from .relocalization.config import RelocalizationConfig
from .sinks.mqtt_config import MqttConfig
from .sources.config import SourceConfig
from .tracking.config import TrackingConfig
from .web.config import HttpConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.9/3.10 on older Pi OS images
    import tomli as tomllib


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    #: A ``.tflite`` path or a name from ``edgepose models list``.
    path: str = "posenet_mobilenet_v1_075_353_481"
    threads: int = Field(2, ge=1, le=64)
    #: ``stretch`` resizes to the model input (as Coral's tests do); ``pad`` keeps the aspect ratio.
    resize: Literal["stretch", "pad"] = "stretch"
    #: How frames shrink to the input: ``antialias`` (box average, default), ``linear`` (fastest, aliases), ``area``, ``nearest``.
    resize_filter: Literal["antialias", "linear", "area", "nearest"] = "antialias"
    #: Force the Edge TPU delegate on or off; ``auto`` follows the model.
    edgetpu: Literal["auto", "on", "off"] = "auto"
    edgetpu_device: str | None = Field(
        None, pattern=r"^(usb|pci)?(:\d+)?$", min_length=1,
        description="Which Edge TPU runs the model when several are attached, as pycoral names them: "
        "'usb', 'usb:0', 'pci', 'pci:0' or ':0' (the N-th of any kind); unset takes the first one found.",
    )


class DecodeConfig(BaseModel):
    """Decoder settings; one left out is the model's own (Coral decoder op, edgepose metadata), else
    edgepose's default (10 poses, 0.25, 0.25, 20 px, multi). See edgepose/decoder_settings.py."""

    model_config = ConfigDict(extra="forbid")

    max_poses: int | None = Field(None, ge=1, le=100)
    #: Minimum pose score (seed article: 0.25) and the root-part threshold of the decoder.
    min_pose_score: float | None = Field(None, ge=0.0, le=1.0)
    min_part_score: float | None = Field(None, ge=0.0, le=1.0)
    #: Radius in model-input pixels within which two poses' parts are the same part.
    nms_radius: float | None = Field(None, gt=0.0)
    #: ``multi`` decodes every person; ``single`` the argmax pose (faster, one person).
    mode: Literal["multi", "single"] | None = None


class EdgeposeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    device_id: str = Field("edgepose", pattern=r"^[A-Za-z0-9_.-]+$")
    model: ModelConfig = ModelConfig()
    source: SourceConfig = SourceConfig()
    decode: DecodeConfig = DecodeConfig()
    tracking: TrackingConfig = TrackingConfig()
    actions: ActionsConfig = ActionsConfig()
    mqtt: MqttConfig = MqttConfig()
    relocalization: RelocalizationConfig = RelocalizationConfig()
    http: HttpConfig = HttpConfig()


def _known_keys(model: type[BaseModel] | None, path: tuple) -> list[str]:
    """The field names (and aliases) of the section at ``path`` below ``model``; [] when it cannot be followed."""
    for part in path:
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return []
        kinds = [field.annotation, *typing.get_args(field.annotation)]
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def format_validation_error(err: ValidationError, source: str = "config", model: type[BaseModel] | None = None) -> str:
    """One line per bad field: ``source: field.path: message (got value)``; a misspelt key gets the closest known one."""
    if model is None and err.title == "EdgeposeConfig":
        model = EdgeposeConfig
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][-1]), _known_keys(model, tuple(e["loc"][:-1])), n=1, cutoff=0.6)
            msg = (f"unknown field; did you mean {close[0]!r}?" if close
                   else "unknown field; check the spelling against the README's config reference")
        got = e.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: {loc}: {msg}{got_s}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> EdgeposeConfig:
    """Load and validate a TOML config; ``overrides`` are merged on top section by section."""
    data: dict = {}
    name = "config"
    if path is not None:
        p = Path(path)
        name = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist.", "pass the path of a TOML file, e.g. firmware_configs/device.toml.") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p} is not valid TOML: {e}.", "fix the syntax at that line.") from None
    for key, val in (overrides or {}).items():
        if isinstance(val, dict):
            data.setdefault(key, {}).update(val)
        else:
            data[key] = val
    try:
        return EdgeposeConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, name)) from None
