"""Errors of the converter: each names the problem and the fix (see :mod:`edgepose.errors`)."""
from __future__ import annotations

from edgepose.errors import EdgeposeError

TF_INSTALL_FIX = "pip install edgepose[convert] (it brings TensorFlow, needed on the workstation only)."


class ConvertError(EdgeposeError):
    """A source model, option or calibration set the converter cannot use."""


def import_tensorflow():
    """Import TensorFlow quietly, or raise a :class:`ConvertError` saying how to install it."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf  # noqa: F401
    except ImportError as e:
        raise ConvertError(f"converting models needs TensorFlow, which is not installed ({e}).", TF_INSTALL_FIX) from None
    return tf
