"""The pipeline's relocalization step: the camera pose every N frames, as a ``FrameResult.extra`` entry."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .config import RelocalizationConfig
from .estimator import CameraPose, CameraPoseEstimator


class RelocalizationStage:
    """Runs a :class:`CameraPoseEstimator` on every ``every_n_frames``-th frame (frame index 0, N, 2N, ...).

    ``update`` returns the ``camera_pose`` payload for the frames it ran on and
    ``None`` for the others, so the pipeline publishes only fresh estimates.
    """

    def __init__(self, config: RelocalizationConfig, estimator: CameraPoseEstimator | None = None):
        self.config = config
        self.estimator = estimator or CameraPoseEstimator(config.model, threads=config.threads)
        self.last: CameraPose | None = None
        self.last_seconds = 0.0

    def due(self, frame_index: int) -> bool:
        return frame_index % self.config.every_n_frames == 0

    def update(self, frame_index: int, image_bgr: np.ndarray) -> dict[str, Any] | None:
        if not self.due(frame_index):
            return None
        t0 = time.perf_counter()
        self.last = self.estimator.estimate(image_bgr)
        self.last_seconds = time.perf_counter() - t0
        return self.last.to_dict()
