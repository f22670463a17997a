"""Which decoder settings are in force, and where each came from.

Precedence, the same for ``edgepose run``, ``serve`` and ``models info``:

1. a command-line flag,
2. the device config (``[decode]``, including its board profile),
3. the model's own settings (Coral's ``PosenetDecoderOp`` options, or the
   ``decoder`` table of edgepose metadata),
4. edgepose's built-in defaults (the seed article's: 10 poses, score 0.25, 20 px).

Every layer leaves a setting it does not name unset (``None``), so a lower
layer is never overridden by a default it did not choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Built-in defaults (the seed article's demo settings).
DEFAULTS: dict[str, Any] = {
    "max_poses": 10,
    "min_pose_score": 0.25,
    "min_part_score": 0.25,
    "nms_radius": 20.0,
    "mode": "multi",
}
KEYS: tuple[str, ...] = tuple(DEFAULTS)

FLAG = "flag"
CONFIG = "device config"
DEFAULT = "default"


@dataclass(frozen=True)
class DecoderSettings:
    """Resolved decoder settings; ``sources[key]`` says which layer set each one."""

    max_poses: int
    min_pose_score: float
    min_part_score: float
    nms_radius: float
    mode: str
    sources: Mapping[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS}

    def describe(self) -> str:
        """``max_poses 10 (model: Coral decoder op), min_pose_score 0.2 (...), ...``"""
        return ", ".join(f"{k} {_fmt(getattr(self, k))} ({self.sources.get(k, DEFAULT)})" for k in KEYS)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {k: {"value": getattr(self, k), "source": self.sources.get(k, DEFAULT)} for k in KEYS}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _present(layer: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    if layer is None:
        return {}
    if not isinstance(layer, Mapping):  # a pydantic model (DecodeConfig)
        layer = {k: getattr(layer, k, None) for k in KEYS}
    return {k: v for k, v in layer.items() if k in DEFAULTS and v is not None}


def resolve_decoder_settings(
    flags: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | Any | None = None,
    model: Mapping[str, Any] | None = None,
    model_source: str = "model",
) -> DecoderSettings:
    """Flag > device config > model > default, key by key (``None`` = not set by that layer)."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for label, layer in ((FLAG, flags), (CONFIG, config), (model_source, model)):
        for k, v in _present(layer).items():
            if k not in values:
                values[k], sources[k] = v, label
    for k, v in DEFAULTS.items():
        if k not in values:
            values[k], sources[k] = v, DEFAULT
    return DecoderSettings(
        max_poses=int(values["max_poses"]),
        min_pose_score=float(values["min_pose_score"]),
        min_part_score=float(values["min_part_score"]),
        nms_radius=float(values["nms_radius"]),
        mode=str(values["mode"]),
        sources=sources,
    )


def model_settings(model: Any) -> tuple[dict[str, Any], str]:
    """The settings a loaded model carries, and a label for where they came from."""
    get = getattr(model, "decoder_settings", None)
    settings = dict(get() or {}) if callable(get) else {}
    origin = getattr(model, "decoder_settings_origin", None) or "model"
    return settings, f"model: {origin}" if origin != "model" else origin
