"""Errors that reach a user: each one names the problem and the fix.

The CLI prints ``str(err)`` on one line and exits non-zero, with no traceback,
for every :class:`EdgeposeError`.
"""
from __future__ import annotations


class EdgeposeError(Exception):
    """Base class. ``problem`` says what went wrong, ``fix`` what to do about it."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem} Fix: {fix}")


class ModelError(EdgeposeError):
    """A model file that cannot be loaded or is not a PoseNet."""


class RuntimeMissingError(EdgeposeError):
    """No TFLite runtime (or no Edge TPU library) is installed."""


class SourceError(EdgeposeError):
    """An image, video, camera or stream that cannot be opened or read."""


class ConfigError(EdgeposeError):
    """A configuration file or value that does not validate."""


class DownloadError(EdgeposeError):
    """A model download that failed or did not match its checksum."""


def install_fix(extra: str, why: str) -> str:
    """How to add an optional extra (``convert``, ``train``, ``pi``...): edgepose is not on PyPI."""
    return (f'in the edgepose checkout, pip install -e ".[{extra}]" ({why}); '
            f'from a built wheel, pip install "edgepose-VERSION-py3-none-any.whl[{extra}]".')
