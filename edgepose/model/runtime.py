"""Which TFLite runtime runs the model, and the external delegate (the Edge TPU, a SoC vendor's NPU) it is given.

Order of preference: ``ai-edge-litert`` (fast, numpy 2), ``tflite-runtime``
(older boards), ``tensorflow.lite`` (a workstation with TensorFlow). All three
expose the same ``Interpreter`` / ``load_delegate`` API.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ModelError, RuntimeMissingError, first_line
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


@dataclass(frozen=True)
class DelegateSpec:
    """One external TFLite delegate: the library ``load_delegate`` opens and the options it is given.

    ``fallback``: ``"cpu"`` runs the model on the CPU (one warning) when the delegate cannot be loaded or
    refuses the model; ``"fail"`` stops with one line naming the problem. ``setting`` names the config key
    in messages; ``hint`` is the fix printed when the library is missing.
    """

    library: str
    options: Mapping[str, Any] = field(default_factory=dict)
    fallback: str = "fail"
    setting: str = "model.delegate"
    hint: str = "check the path in model.delegate (the board vendor's SDK or image ships the library)."
    #: What failed, for messages: "the delegate /usr/lib/libvx_delegate.so".
    what: str = ""

    def describe(self) -> str:
        return self.what or f"the delegate {self.library}"


def edgetpu_delegate(device: str | None = None) -> DelegateSpec:
    """The Edge TPU as one delegate among others: libedgetpu with pycoral's ``device`` option."""
    import platform

    lib = EDGETPU_LIBS.get(platform.system(), "libedgetpu.so.1")
    return DelegateSpec(
        lib,
        {"device": device} if device else {},
        "fail",
        "model.edgetpu_device" if device else "model.edgetpu",
        EDGETPU_INSTALL_HINT,
        f"the Edge TPU runtime {lib}",
    )


def delegate_options(options: Mapping[str, Any]) -> dict[str, str]:
    """Options as the plug-in ABI takes them (``char **keys, char **values``): booleans as true/false, the rest as text."""
    return {str(k): (("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in options.items()}


def load_delegate(backend: Backend, spec: DelegateSpec):
    """``backend.load_delegate(spec.library, options)``, or ``None`` (CPU) when it fails and ``spec.fallback == "cpu"``.

    A failure is one :class:`RuntimeMissingError` line naming the library, the runtime's reason and the fix.
    """
    import ctypes

    try:
        # Probe first: a failed load_delegate leaves a half-built Delegate whose __del__ raises.
        ctypes.CDLL(spec.library)
    except OSError as e:
        return _delegate_failed(spec, f"{spec.describe()} ({spec.setting}) could not be opened ({e}).", spec.hint)
    try:
        return backend.load_delegate(spec.library, delegate_options(spec.options))
    except (ValueError, OSError, RuntimeError) as e:
        reason = first_line(e)
        if spec.options and spec.setting == "model.edgetpu_device":
            return _delegate_failed(
                spec,
                f"the Edge TPU {spec.options.get('device')!r} (model.edgetpu_device) could not be opened by {spec.library} ({reason}).",
                "check it is plugged in ('lsusb' shows 1a6e:089a or 18d1:9302; 'ls /dev/apex_*' for PCIe), "
                "or remove model.edgetpu_device to take any Edge TPU.",
            )
        opts = f" with options {dict(spec.options)}" if spec.options else ""
        return _delegate_failed(
            spec,
            f"{spec.describe()} ({spec.setting}) refused to start{opts} ({reason}).",
            spec.hint
            if spec.setting.startswith("model.edgetpu")
            else "check model.delegate_options against the delegate's documentation and that its device is present.",
        )


def _delegate_failed(spec: DelegateSpec, problem: str, fix: str) -> None:
    """Warn and return (the caller goes on without the delegate) when ``spec`` may fall back to the CPU, else raise."""
    if spec.fallback == "cpu":
        log.warning('%s Running on the CPU instead (model.delegate_fallback = "cpu").', problem)
        return None
    raise RuntimeMissingError(
        problem,
        fix
        + (
            ' To run on the CPU meanwhile, set model.delegate_fallback = "cpu" or remove model.delegate.'
            if spec.setting == "model.delegate"
            else ""
        ),
    ) from None


def configured_delegate(model_config: Any) -> DelegateSpec | None:
    """The ``[model] delegate`` of a device config as a :class:`DelegateSpec` (``None`` when unset)."""
    if not getattr(model_config, "delegate", None):
        return None
    return DelegateSpec(model_config.delegate, dict(model_config.delegate_options), model_config.delegate_fallback)


def make_interpreter(
    model: bytes,
    num_threads: int = 1,
    delegate: DelegateSpec | None = None,
    backend: Backend | None = None,
    name: str = "model",
):
    """Build and allocate an interpreter for ``model`` (flatbuffer bytes), with ``delegate`` when given.

    The Edge TPU is ``delegate=edgetpu_delegate(device)``.
    """
    return make_interpreter_with(model, num_threads, delegate, backend, name)[0]


def make_interpreter_with(
    model: bytes,
    num_threads: int = 1,
    delegate: DelegateSpec | None = None,
    backend: Backend | None = None,
    name: str = "model",
) -> tuple[Any, bool]:
    """``(interpreter, whether the delegate runs it)``: a delegate that fails to load, or loads but refuses this
    model (its Prepare fails), leaves the model on the CPU when ``delegate.fallback == "cpu"``, else stops with one line."""
    backend = backend or get_backend()
    loaded = load_delegate(backend, delegate) if delegate is not None else None
    try:
        return _allocate(backend, model, num_threads, [loaded] if loaded is not None else None), loaded is not None
    except (ValueError, RuntimeError) as e:
        text = str(e).strip()
        msg = first_line(e)
        if "edgetpu-custom-op" in text:
            raise RuntimeMissingError(f"{name} needs the Edge TPU ({msg}).", EDGETPU_INSTALL_HINT) from None
        if "custom op" in text.lower():
            raise ModelError(
                f"{name} uses a custom op this runtime does not have ({msg}).",
                "convert the model with builtin ops only.",
            ) from None
        if loaded is not None and delegate is not None:
            # The delegate loaded but rejected this graph (its Prepare failed).
            _delegate_failed(
                delegate,
                f"{delegate.describe()} ({delegate.setting}) could not run {name} ({msg}).",
                "use a model built for this accelerator (its vendor's converter).",
            )
            return _allocate(backend, model, num_threads, None), False
        raise ModelError(
            f"{name} could not be loaded by {backend.name} ({msg}).", "re-download or re-convert the model."
        ) from None


def _allocate(backend: Backend, model: bytes, num_threads: int, delegates: list | None):
    failure: ValueError | RuntimeError | None = None
    with native_quiet():  # TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate" (shown with -v)
        try:
            interp = backend.Interpreter(model_content=model, num_threads=num_threads, experimental_delegates=delegates)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            # Caught inside the block, so its start-up noise stays hidden: the caller's one line says it all.
            failure = err
    if failure is not None:
        raise failure
    return interp
