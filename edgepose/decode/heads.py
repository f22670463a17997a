"""The raw PoseNet outputs in the one layout every decoder takes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
