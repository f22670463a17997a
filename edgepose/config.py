"""The one configuration object, validated when it is loaded.

A device config is a TOML file with one table per section; every section is a
pydantic model owned by the module that uses it. An invalid value is reported
as one line naming the field and what is allowed.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, Field, ValidationError, field_validator

from .actions.config import ActionsConfig
from .config_base import ConfigModel
from .errors import ConfigError
from .mqtt.config import MqttConfig
from .preprocess import ResizeFilter, ResizeMode
from .redact import SECRET_WORDS
from .relocalization.config import RelocalizationConfig
from .sources.config import SourceConfig
from .tracking.config import TrackingConfig
from .web.config import HttpConfig


class ModelConfig(ConfigModel):
    path: str = Field(
        "posenet_mobilenet_v1_075_353_481", description="A `.tflite` path or a name from `edgepose models list`."
    )
    threads: int = Field(2, ge=1, le=64, description="Interpreter threads (the Pi 4 and 5 have 4 cores).")
    resize: ResizeMode = Field(
        "stretch",
        description="`stretch` resizes to the model input (as Coral's tests do); `pad` keeps the aspect ratio.",
    )
    resize_filter: ResizeFilter = Field(
        "antialias",
        description="How frames shrink to the input: `antialias` (box average, default), `linear` (fastest, aliases), `area`, `nearest`.",
    )
    edgetpu: Literal["auto", "on", "off"] = Field(
        "auto", description="Force the Edge TPU delegate on or off; `auto` follows the model."
    )
    decoder: Literal["auto", "numba", "numpy"] | None = Field(
        None,
        description="Multi-pose decoder: `numba` (compiled, cached), `numpy` (the reference), `auto` numba when it loads; "
        "unset follows $EDGEPOSE_DECODER, else auto.",
    )
    edgetpu_device: str | None = Field(
        None,
        pattern=r"^(usb|pci)?(:\d+)?$",
        min_length=1,
        description="Which Edge TPU runs the model when several are attached, as pycoral names them: "
        "'usb', 'usb:0', 'pci', 'pci:0' or ':0' (the N-th of any kind); unset takes the first one found.",
    )
    delegate: str | None = Field(
        None,
        min_length=1,
        description="An external TFLite delegate library (a path or a name the dynamic loader finds, e.g. `/usr/lib/libvx_delegate.so`), "
        "loaded with the runtime's `load_delegate`: a SoC vendor's NPU. Unset: the CPU (or the Edge TPU, per `edgetpu`).",
    )
    delegate_options: dict[str, str | int | float | bool] = Field(
        {}, description="Options given to `delegate` (keys and values as its documentation names them; sent as text)."
    )
    delegate_fallback: Literal["cpu", "fail"] = Field(
        "fail",
        description="When `delegate` cannot be loaded or refuses the model: `fail` stops with the reason, `cpu` warns and runs on the CPU.",
    )

    @field_validator("delegate_options", mode="before")
    @classmethod
    def _scalar_options(cls, v: Any) -> Any:
        # One message per bad option, instead of one per member of the value union.
        for key, val in v.items() if isinstance(v, dict) else ():
            if not isinstance(val, (str, int, float, bool)):
                raise ValueError(
                    f"option {key!r} is a {type(val).__name__}; delegate options are strings, numbers or true/false"
                )
        return v


class DecodeConfig(ConfigModel):
    """Decoder settings; one left out is the model's own (Coral decoder op, edgepose metadata), else
    edgepose's default (10 poses, 0.25, 0.25, 20 px, multi). See edgepose/decoder_settings.py."""

    max_poses: int | None = Field(None, ge=1, le=100, description="Most people decoded per frame.")
    min_pose_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Minimum pose score (seed article: 0.25) and the root-part threshold of the decoder.",
    )
    min_part_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Keypoints scoring less are left out of a pose's parts (and of tracking and drawing).",
    )
    nms_radius: float | None = Field(
        None,
        gt=0.0,
        le=1000.0,
        description="Radius in model-input pixels within which two poses' parts are the same part.",
    )
    mode: Literal["multi", "single"] | None = Field(
        None, description="`multi` decodes every person; `single` the argmax pose (faster, one person)."
    )


class EdgeposeConfig(ConfigModel):
    device_id: str = Field(
        "edgepose",
        pattern=r"^[A-Za-z0-9_.-]+$",
        max_length=64,
        description="Name of this device in MQTT topics, status and recordings (letters, digits, _ . -).",
    )
    model: ModelConfig = Field(ModelConfig(), description="The keypoint model and how it runs.")
    source: SourceConfig = Field(SourceConfig(), description="Where frames come from.")
    decode: DecodeConfig = Field(DecodeConfig(), description="How heatmaps become poses.")
    tracking: TrackingConfig = Field(TrackingConfig(), description="Person tracking across frames.")
    actions: ActionsConfig = Field(ActionsConfig(), description="Action recognition on tracked people.")
    mqtt: MqttConfig = Field(
        MqttConfig(), description="Publishing poses, events and status over MQTT (edgepose serve)."
    )
    relocalization: RelocalizationConfig = Field(
        RelocalizationConfig(), description="The camera-relocalization model run beside the keypoint model."
    )
    http: HttpConfig = Field(HttpConfig(), description="The device's web page, MJPEG stream and metrics.")

    def redacted(self) -> dict[str, Any]:
        """A dump safe to print or log: no broker password, no password inside the source URL."""
        from .redact import redact_url

        dump = self.model_dump(mode="json")
        dump["mqtt"] = self.mqtt.redacted()
        dump["source"]["uri"] = redact_url(str(dump["source"]["uri"]))
        return dump


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


def _edits(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): typos, including swapped letters, count 1."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def looks_secret(name: str) -> bool:
    """Whether a config key is, or is a misspelling of, a name that holds a secret (``mqtt_pasword``, ``psk``).

    The names are :data:`edgepose.redact.SECRET_WORDS`; a bad value under such a key is never echoed in an error.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    for w in words + ["".join(words)]:
        if any(len(s) >= 5 and s in w for s in SECRET_WORDS):  # mqttpassword, apitoken
            return True
        if any(_edits(w, s) <= 1 for s in SECRET_WORDS):  # one typo: tokn, pks, kye
            return True
        if len(w) > 4 and difflib.get_close_matches(w, SECRET_WORDS, n=1, cutoff=0.8):  # passwrod, secert
            return True
    return False


def format_validation_error(err: ValidationError, source: str = "config", model: type[BaseModel] | None = None) -> str:
    """One line per bad field: ``source: field.path: message (got value)``; a misspelt key gets the closest known one.

    The value is left out when any part of the field's path looks like a secret (see :func:`looks_secret`).
    """
    if model is None and err.title == "EdgeposeConfig":
        model = EdgeposeConfig
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(
                str(e["loc"][-1]), _known_keys(model, tuple(e["loc"][:-1])), n=1, cutoff=0.6
            )
            msg = (
                f"unknown field; did you mean {close[0]!r}?"
                if close
                else "unknown field; check the spelling against firmware_configs/CONFIG.md"
            )
        got = e.get("input")
        if isinstance(got, dict):
            got_s = ""
        elif any(looks_secret(str(p)) for p in e["loc"]):
            got_s = " (value not shown: it may be a secret)"
        else:
            from .redact import redact_url

            got_s = f" (got {redact_url(repr(got))})"  # a URL's password is never echoed either
        lines.append(f"{source}: {loc}: {msg}{got_s}")
    return "\n".join(lines)


def validate(data: Mapping[str, Any], source: str = "config") -> EdgeposeConfig:
    """``data`` as an :class:`EdgeposeConfig`, or a :class:`ConfigError` with one line per bad field."""
    try:
        return EdgeposeConfig.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *, board: str | Path | None = None
) -> EdgeposeConfig:
    """The config every command runs with: defaults < board profile < the TOML file at ``path`` < ``overrides``.

    The board profile is ``board`` (a name or a path), else ``$EDGEPOSE_BOARD``, else ``board.toml`` beside
    ``path`` (see :mod:`edgepose.profiles`); tables merge key by key.
    """
    from .profiles import merged_data

    data, name = merged_data(path, board, overrides, check=validate)
    return validate(data, name)
