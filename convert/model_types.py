"""What a model type's converted ``.tflite`` must contain, and its metadata.

The precision, calibration and metadata machinery is shared; a model type only
says which output *roles* it has, how to recognise them by name and channel
count, and which metadata fields the runtime needs. PoseNet (multi-person pose)
is the first; the relocalization PoseNet (``[x, q]`` regression) plugs in the
same way with roles ``position`` and ``orientation``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from edgepose.types import KEYPOINT_NAMES, POSE_EDGES

METADATA_FORMAT = "edgepose"
METADATA_VERSION = 1
PRECISIONS = ("float32", "float16", "dynamic", "int8")


@dataclass(frozen=True)
class ModelType:
    name: str
    #: role -> regular expression matched (case-insensitive) against source output names
    role_patterns: dict[str, str]
    #: role -> number of output channels (last axis)
    channels: dict[str, int]
    #: roles the runtime reads in this order (also the order of the converted function's outputs)
    roles: tuple[str, ...] = field(default=())
    #: composite output -> the roles it holds, concatenated along channels in this order
    composites: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: outputs are feature maps on a grid (input sides must be k*stride+1); False for regressors
    spatial: bool = True
    #: builds the metadata dict (keyword arguments as :func:`posenet_metadata`)
    metadata: Callable[..., dict[str, Any]] | None = None

    def role_of(self, name: str) -> str | None:
        """The role whose pattern matches ``name`` (the most specific, i.e. longest match, wins)."""
        best: tuple[int, str] | None = None
        for role, pat in self.role_patterns.items():
            m = re.search(pat, name, re.IGNORECASE)
            if m and (best is None or len(m.group(0)) > best[0]):
                best = (len(m.group(0)), role)
        return None if best is None else best[1]


POSENET = ModelType(
    name="posenet",
    role_patterns={
        "heatmaps": r"heat_?maps?",
        "short_offsets": r"(short_?)?offsets?",
        "displacement_fwd": r"displacement_?fwd|fwd|forward",
        "displacement_bwd": r"displacement_?bwd|bwd|backward",
        # Coral-style single output holding fwd then bwd (split in two by the converter).
        "mid_offsets": r"mid_?offsets?",
    },
    channels={
        "heatmaps": len(KEYPOINT_NAMES),
        "short_offsets": 2 * len(KEYPOINT_NAMES),
        "displacement_fwd": 2 * len(POSE_EDGES),
        "displacement_bwd": 2 * len(POSE_EDGES),
    },
    roles=("heatmaps", "short_offsets", "displacement_fwd", "displacement_bwd"),
    composites={"mid_offsets": ("displacement_fwd", "displacement_bwd")},
)


def posenet_metadata(
    *,
    name: str,
    architecture: str,
    multiplier: float,
    output_stride: int,
    input_size: tuple[int, int],
    outputs: dict[str, str],
    source: str,
    precision: str,
    input_range: tuple[float, float] = (-1.0, 1.0),
    heatmap_activation: str = "logits",
) -> dict[str, Any]:
    """The metadata dict the runtime's loader reads (contract: convert/README.md)."""
    missing = [r for r in POSENET.roles if r not in outputs]
    if missing:
        raise ValueError(f"outputs lack roles {missing}")
    return {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "model_type": POSENET.name,
        "name": name,
        "architecture": architecture,
        "multiplier": float(multiplier),
        "output_stride": int(output_stride),
        "input": {
            "height": int(input_size[0]),
            "width": int(input_size[1]),
            "color": "RGB",
            "range": [float(input_range[0]), float(input_range[1])],
        },
        "heatmap_activation": heatmap_activation,
        "keypoint_names": list(KEYPOINT_NAMES),
        "outputs": {r: outputs[r] for r in POSENET.roles},
        "source": source,
        "precision": precision,
    }


object.__setattr__(POSENET, "metadata", posenet_metadata)
