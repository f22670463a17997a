"""TensorFlow's, TFLite's and FFmpeg's own log output: hidden by default, shown with ``-v``.

TensorFlow prints CUDA, oneDNN and absl lines (``E0000 … failed call to cuInit``)
from C++ straight to file descriptor 2, some of them before it reads
``TF_CPP_MIN_LOG_LEVEL``; TFLite prints ``INFO: Created TensorFlow Lite XNNPACK
delegate``. :func:`configure` sets the environment and Python loggers before
TensorFlow is imported; :func:`native_quiet` drops those C++ lines around the
calls that print them, and gives back every other line (or all of them when the
call fails). Nothing here imports TensorFlow until :func:`import_tensorflow` runs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .errors import EdgeposeError, install_fix

#: Lines of native log output that say nothing a user can act on (shown with -v).
NOISE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "  # absl/tsl C++ log lines: I0000 00:00:17… port.cc:153] …
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite)"  # TFLite's delegate notices
    r"|fully_quantize: \d+, inference_type: "  # the quantizer's settings, printed by every int8 conversion
    r")"
)
_PY_LOGGERS = ("tensorflow", "absl", "keras", "h5py")
_verbose = 0


def configure(verbose: int) -> None:
    """Call before TensorFlow is imported: TF's logs only with ``verbose >= 1``.

    A ``TF_CPP_MIN_LOG_LEVEL`` already in the environment is kept.
    """
    global _verbose
    _verbose = verbose
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if verbose == 0 else "0")
    # FFmpeg inside OpenCV ("[h264 @ 0x…] Invalid NAL unit size"): our sources say what went wrong instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8" if verbose == 0 else "24")  # AV_LOG_QUIET / AV_LOG_WARNING
    level = logging.ERROR if verbose == 0 else logging.NOTSET
    for name in _PY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbose == 0:
        warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf_keras|absl|h5py)(\.|$)")


_passthrough: list[TextIO] = []


def _stderr_passthrough(like: TextIO) -> TextIO:
    """A stream on a lasting duplicate of fd 2 as it is now (the terminal), reused while fd 2 is the same file.

    It stays open after :func:`native_quiet` ends: a progress bar made inside the block may write to it later.
    """
    here = os.fstat(2)
    for s in _passthrough:
        there = os.fstat(s.fileno())
        if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino):
            return s
    s = open(
        os.dup(2), "w", buffering=1, encoding=getattr(like, "encoding", None) or "utf-8", errors="backslashreplace"
    )
    _passthrough.append(s)
    return s


@contextmanager
def native_quiet(stdout: bool = False) -> Iterator[None]:
    """Drop the :data:`NOISE` lines C++ code writes to fd 2 inside the block; all is kept with -v or on an exception.

    ``stdout=True`` also drops what the block writes to fd 1: TensorFlow's
    converter prints the SavedModel signature it exported there.
    """
    if _verbose or os.environ.get("EDGEPOSE_NATIVE_LOGS"):
        yield
        return
    fds = (1, 2) if stdout else (2,)
    streams = {1: sys.stdout, 2: sys.stderr}
    saved: dict[int, int] = {}
    try:
        for fd in fds:
            streams[fd].flush()
            saved[fd] = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no usable fd (a daemon): nothing to hide
        for d in saved.values():
            os.close(d)
        yield
        return
    failed = False
    tmps = {fd: tempfile.TemporaryFile(mode="w+b") for fd in fds}
    # Python's own stderr (progress bars, our messages) keeps reaching the terminal as it happens.
    real_stderr = sys.stderr
    sys.stderr = _stderr_passthrough(real_stderr)
    try:
        for fd in fds:
            os.dup2(tmps[fd].fileno(), fd)
        yield
    except BaseException:
        failed = True
        raise
    finally:
        sys.stderr.flush()
        sys.stderr = real_stderr
        for fd in fds:
            try:
                streams[fd].flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            tmps[fd].seek(0)
            text = tmps[fd].read().decode("utf-8", "replace")
            tmps[fd].close()
            if not failed:
                text = "" if fd == 1 else "".join(ln for ln in text.splitlines(keepends=True) if not NOISE.match(ln))
            if text:
                streams[fd].write(text)
                streams[fd].flush()


def import_tensorflow(what: str, fix: str, error: type[EdgeposeError] = EdgeposeError) -> Any:
    """``import tensorflow`` without its start-up lines; a missing TensorFlow is ``error`` saying ``what`` needs it."""
    with native_quiet():
        try:
            import tensorflow as tf
        except ImportError as e:
            raise error(f"{what} needs TensorFlow, which is not installed ({e}).", fix) from None
    return tf


#: How to add what training needs (``edgepose actions train``, ``edgepose reloc train``).
TRAIN_INSTALL_FIX = install_fix("train", "TensorFlow and scikit-learn, on a workstation")


def import_tensorflow_for_training() -> Any:
    """TensorFlow for a training command, or an error saying how to add the ``[train]`` extra."""
    return import_tensorflow("training", TRAIN_INSTALL_FIX)
