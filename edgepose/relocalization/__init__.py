"""Camera relocalization (PoseNet of Kendall et al., ICCV 2015) on the device.

Importing this package registers the ``relocalization`` model type with
:mod:`edgepose.model.registry`, so ``open_model`` opens such ``.tflite`` files
as a :class:`CameraPoseEstimator`. Training and export live in
``convert/relocalization`` (workstation, TensorFlow).
"""
from __future__ import annotations

from ..model.registry import register_model_type
from .config import RelocalizationConfig
from .estimator import MODEL_TYPE, CameraPose, CameraPoseEstimator, crop_to_input, load_relocalization

register_model_type(MODEL_TYPE, load_relocalization)

__all__ = ["CameraPose", "CameraPoseEstimator", "RelocalizationConfig", "crop_to_input", "load_relocalization", "MODEL_TYPE"]
