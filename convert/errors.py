"""Errors of the converter: each names the problem and the fix (see :mod:`edgepose.errors`)."""

from __future__ import annotations

from edgepose.errors import EdgeposeError, install_fix

TF_INSTALL_FIX = install_fix("convert", "it brings TensorFlow, needed on the workstation only")


class ConvertError(EdgeposeError):
    """A source model, option or calibration set the converter cannot use."""


def import_tensorflow():
    """Import TensorFlow without its start-up log lines, or raise a :class:`ConvertError` saying how to install it."""
    from edgepose.tflogs import import_tensorflow as quiet_import

    return quiet_import("converting models", TF_INSTALL_FIX, ConvertError)
