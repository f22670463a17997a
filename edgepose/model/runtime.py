"""Which TFLite runtime runs the model, and the Edge TPU delegate.

Order of preference: ``ai-edge-litert`` (fast, numpy 2), ``tflite-runtime``
(older boards), ``tensorflow.lite`` (a workstation with TensorFlow). All three
expose the same ``Interpreter`` / ``load_delegate`` API.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ModelError, RuntimeMissingError
from ..tflogs import native_quiet

log = logging.getLogger(__name__)

#: Shared-library names of the Edge TPU runtime per platform.
EDGETPU_LIBS = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}

EDGETPU_INSTALL_HINT = (
    "install the Edge TPU runtime (Debian/Raspberry Pi OS: add Coral's apt repository and "
    "'sudo apt install libedgetpu1-std'), plug in the Coral device, or run the model's CPU build "
    "(a *_quant.tflite without _edgetpu)."
)


@dataclass(frozen=True)
class Backend:
    name: str
    Interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]


def _candidates() -> list[tuple[str, Callable[[], Backend]]]:
    def litert() -> Backend:
        from ai_edge_litert import interpreter as m

        return Backend("ai-edge-litert", m.Interpreter, m.load_delegate)

    def tflite_runtime() -> Backend:
        from tflite_runtime import interpreter as m

        return Backend("tflite-runtime", m.Interpreter, m.load_delegate)

    def tensorflow() -> Backend:
        import tensorflow as tf

        return Backend("tensorflow", tf.lite.Interpreter, tf.lite.experimental.load_delegate)

    return [("ai-edge-litert", litert), ("tflite-runtime", tflite_runtime), ("tensorflow", tensorflow)]


_backend: Backend | None = None


def get_backend(prefer: str | None = None) -> Backend:
    """The first importable runtime (``EDGEPOSE_RUNTIME`` or ``prefer`` picks one by name)."""
    global _backend
    prefer = prefer or os.environ.get("EDGEPOSE_RUNTIME")
    if _backend is not None and (prefer is None or _backend.name == prefer):
        return _backend
    errors = []
    for name, factory in _candidates():
        if prefer and name != prefer:
            continue
        try:
            backend = factory()
        except Exception as e:  # ImportError, or tflite-runtime failing under numpy 2
            errors.append(f"{name}: {type(e).__name__}: {e}")
            continue
        if prefer is None:
            _backend = backend
        log.debug("TFLite runtime: %s", name)
        return backend
    raise RuntimeMissingError(
        "no TFLite runtime could be imported (" + "; ".join(errors) + ").",
        "pip install ai-edge-litert (or tflite-runtime on boards without an ai-edge-litert wheel).",
    )


def load_edgetpu_delegate(backend: Backend, device: str | None = None):
    import ctypes
    import platform

    lib = EDGETPU_LIBS.get(platform.system(), "libedgetpu.so.1")
    options = {"device": device} if device else {}
    try:
        # Probe first: a failed load_delegate leaves a half-built Delegate whose __del__ raises.
        ctypes.CDLL(lib)
    except OSError as e:
        raise RuntimeMissingError(
            f"this model is compiled for the Edge TPU but the Edge TPU runtime {lib} is not installed ({e}).",
            EDGETPU_INSTALL_HINT,
        ) from None
    try:
        return backend.load_delegate(lib, options)
    except (ValueError, OSError, RuntimeError) as e:
        if device:
            raise RuntimeMissingError(
                f"the Edge TPU {device!r} (model.edgetpu_device) could not be opened by {lib} ({e}).",
                "check it is plugged in ('lsusb' shows 1a6e:089a or 18d1:9302; 'ls /dev/apex_*' for PCIe), "
                "or remove model.edgetpu_device to take any Edge TPU.",
            ) from None
        raise RuntimeMissingError(
            f"this model is compiled for the Edge TPU but the delegate {lib} could not be loaded ({e}).",
            EDGETPU_INSTALL_HINT,
        ) from None


def make_interpreter(
    model: bytes,
    num_threads: int = 1,
    edgetpu: bool = False,
    backend: Backend | None = None,
    name: str = "model",
    edgetpu_device: str | None = None,
):
    """Build and allocate an interpreter for ``model`` (flatbuffer bytes).

    ``edgetpu_device`` picks one Edge TPU as pycoral's ``make_interpreter(device=...)`` does:
    ``usb``, ``usb:N``, ``pci``, ``pci:N`` or ``:N``; ``None`` takes any.
    """
    backend = backend or get_backend()
    delegates = [load_edgetpu_delegate(backend, edgetpu_device)] if edgetpu else None
    failure: ValueError | RuntimeError | None = None
    with native_quiet():  # TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate" (shown with -v)
        try:
            interp = backend.Interpreter(model_content=model, num_threads=num_threads, experimental_delegates=delegates)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            # Caught inside the block, so its start-up noise stays hidden: the one line below says it all.
            failure = err
    if failure is not None:
        text = str(failure).strip()
        msg = text.splitlines()[0][:200] if text else type(failure).__name__
        if "edgetpu-custom-op" in text:
            raise RuntimeMissingError(f"{name} needs the Edge TPU ({msg}).", EDGETPU_INSTALL_HINT) from None
        if "custom op" in text.lower():
            raise ModelError(f"{name} uses a custom op this runtime does not have ({msg}).", "convert the model with builtin ops only.") from None
        raise ModelError(f"{name} could not be loaded by {backend.name} ({msg}).", "re-download or re-convert the model.") from None
    return interp
