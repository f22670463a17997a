"""Camera relocalization (PoseNet of Kendall et al., ICCV 2015) on the device.

``open_model`` (:mod:`edgepose.model.registry`) opens ``relocalization``
``.tflite`` files as a :class:`CameraPoseEstimator` (entry point in
pyproject.toml). Training and export live in ``convert/relocalization``
(workstation, TensorFlow).
"""

from __future__ import annotations

from .config import RelocalizationConfig
from .estimator import MODEL_TYPE, CameraPose, CameraPoseEstimator, crop_to_input, load_relocalization

__all__ = [
    "CameraPose",
    "CameraPoseEstimator",
    "RelocalizationConfig",
    "crop_to_input",
    "load_relocalization",
    "MODEL_TYPE",
]
