"""Errors that reach a user: each one names the problem and the fix.

The CLI prints ``str(err)`` on one line and exits non-zero, with no traceback,
for every :class:`EdgeposeError`.
"""

from __future__ import annotations


def first_line(e: BaseException | str, limit: int = 200, *, default: str | None = None, last: bool = False) -> str:
    """One line of an exception's message (or of a tool's output), cut to ``limit`` characters.

    The first non-blank line, or the last one with ``last=True`` (OpenCV and compilers put the cause at the
    end). An empty message gives ``default``: the exception's type name unless told otherwise (``""`` for a
    string). Never raises, whatever the message holds.
    """
    lines = str(e).strip().splitlines()
    if not lines:
        if default is not None:
            return default
        return "" if isinstance(e, str) else type(e).__name__
    return lines[-1 if last else 0].strip()[:limit]


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


class DatasetError(EdgeposeError):
    """Training or evaluation data that cannot be read: action recordings and labels, relocalization
    datasets, the photographs of a synthetic scene."""


def install_fix(extra: str, why: str) -> str:
    """How to add an optional extra (``convert``, ``train``, ``pi``...): edgepose is not on PyPI."""
    return (
        f'in the edgepose checkout, pip install -e ".[{extra}]" ({why}); '
        f'from a built wheel, pip install "edgepose-VERSION-py3-none-any.whl[{extra}]".'
    )
