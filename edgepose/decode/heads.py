"""The raw PoseNet outputs in the one layout every decoder takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_ROLES = ("heatmaps", "offsets", "displacements")


@dataclass
class Heads:
    """PoseNet's three heads for one image, float32, in model-input pixels.

    * ``heatmaps``: ``(H, W, 17)`` logits (a model that outputs sigmoid scores
      is converted to logits by the loader).
    * ``offsets``: ``(H, W, 34)``, ``[dy x17, dx x17]`` short-range offsets in pixels.
    * ``displacements``: ``(H, W, 64)``, ``[fwd dy x16, fwd dx x16, bwd dy x16, bwd dx x16]``
      mid-range offsets in pixels along :data:`edgepose.types.POSE_EDGES`.
    * ``stride``: input pixels per heatmap cell.
    """

    heatmaps: np.ndarray
    offsets: np.ndarray
    displacements: np.ndarray
    stride: int


class QuantizedHeads(Heads):
    """:class:`Heads` as a quantized model outputs them: integer arrays of one dtype and each one's
    ``(scale, zero_point)``. The compiled decoder reads them as they are and dequantizes only the values it
    reads (a frame's heads are a few hundred thousand values, of which it reads the heatmaps and a few
    hundred samples); ``heatmaps``, ``offsets`` and ``displacements`` are dequantized on first access,
    to the bits of :meth:`edgepose.model.base.TensorSpec.dequantize`, for every other reader."""

    def __init__(
        self, raw: tuple[np.ndarray, np.ndarray, np.ndarray], quant: tuple[tuple[float, float], ...], stride: int
    ):
        self.raw = tuple(np.ascontiguousarray(a) for a in raw)
        self.quant = tuple((np.float32(s), np.float32(z)) for s, z in quant)  # applied in float32
        self.stride = int(stride)

    def __getattr__(self, name: str) -> Any:
        if name not in _ROLES:
            raise AttributeError(name)
        i = _ROLES.index(name)
        scale, zero = self.quant[i]
        value = (self.raw[i].astype(np.float32) - zero) * scale
        setattr(self, name, value)
        return value
