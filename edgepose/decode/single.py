"""Single-pose decoding: per-part argmax of the heatmap plus its short offset."""

from __future__ import annotations

import numpy as np

from ..types import NUM_KEYPOINTS
from .heads import Heads


def decode_single_pose(heads: Heads) -> tuple[np.ndarray, np.ndarray, float]:
    """Return ``(keypoints_yx (17, 2) in input pixels, keypoint scores (17,), pose score)``.

    Fast and robust for one person; with several people the parts may come
    from different people, which is what :func:`decode_multiple_poses` is for.
    """
    h, w, k = heads.heatmaps.shape
    flat = heads.heatmaps.reshape(h * w, k)
    best = flat.argmax(axis=0)  # (17,)
    parts = np.arange(NUM_KEYPOINTS)
    logits = flat[best, parts]
    cells = np.stack(np.divmod(best, w), axis=1).astype(np.float32)  # (17, 2) y, x
    offs = heads.offsets.reshape(h * w, 2 * k)
    dy = offs[best, parts]
    dx = offs[best, parts + k]
    yx = cells * heads.stride + np.stack([dy, dx], axis=1)
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return yx.astype(np.float32), scores, float(scores.mean())
