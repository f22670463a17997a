"""What every edgepose ``.tflite`` model shares, and what the pipeline expects of a keypoint model.

:class:`TFLiteModel` is the one base of the three model kinds (PoseNet
keypoints, camera relocalization, action classifier): it reads the bytes,
the edgepose metadata and its model type, chooses the Edge TPU delegate,
builds the interpreter and moves tensors in and out, quantizing inputs and
dequantizing outputs with each tensor's own parameters (the job pycoral's
``adapters/common.py`` does for Coral models). The kinds add only what is
theirs: pre-processing and the meaning of their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import ModelError
from . import flatbuf
from .runtime import DelegateSpec, edgetpu_delegate, get_backend, make_interpreter_with

#: The metadata key naming a model's kind; models without edgepose metadata are PoseNets.
MODEL_TYPE_KEY = "model_type"
DEFAULT_MODEL_TYPE = "posenet"
#: Action models exported before the key was unified wrote ``"type"``; still read.
_LEGACY_TYPE_KEY = "type"


def model_type(meta: dict[str, Any] | None) -> str:
    """The model type edgepose metadata names (``posenet`` without metadata)."""
    meta = meta or {}
    return str(meta.get(MODEL_TYPE_KEY) or meta.get(_LEGACY_TYPE_KEY) or DEFAULT_MODEL_TYPE)


#: The flatbuffer format's own limit (32-bit offsets): a bigger file is not a .tflite, and is not read into memory.
MAX_MODEL_BYTES = 2**31 - 1


def read_model_bytes(
    model: str | Path | bytes,
    what: str = "model",
    fix: str = "check the path, or use a name from 'edgepose models list'.",
) -> tuple[bytes, str]:
    """``(bytes, display name)`` of a model path or buffer; a missing or unreadable file is a :class:`ModelError`."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), what
    p = Path(model)
    if not p.exists():
        raise ModelError(f"{what} file {p} does not exist.", fix)
    if p.is_dir():
        raise ModelError(f"{p} is a directory, not a .tflite model.", "pass the .tflite file inside it.")
    if not p.is_file():  # /dev/zero, a FIFO, a tty: reading would never end
        raise ModelError(f"{p} is not a regular file, not a .tflite model.", "pass the .tflite file itself.")
    try:
        size = p.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelError(
                f"{p.name} is {size / 2**30:.1f} GiB; a .tflite flatbuffer is below 2 GiB.",
                "pass the .tflite model, not a disk image or an archive.",
            )
        return p.read_bytes(), p.name
    except OSError as e:
        raise ModelError(f"cannot read {what} {p}: {e.strerror}.", "check the file's permissions.") from None


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: where it is and how its integers map to real values."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @classmethod
    def from_detail(cls, d: dict[str, Any]) -> TensorSpec:
        scale, zp = d.get("quantization", (0.0, 0))
        return cls(
            int(d["index"]),
            str(d["name"]),
            tuple(int(v) for v in d["shape"]),
            np.dtype(d["dtype"]),
            float(scale),
            int(zp),
        )

    @property
    def quantized(self) -> bool:
        return self.dtype in (np.uint8, np.int8, np.int16)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> this tensor's dtype (rounded and clipped when it is quantized)."""
        if not self.quantized:
            return np.asarray(x, self.dtype)
        return self.cast(np.asarray(x, np.float32) / np.float32(self.scale) + np.float32(self.zero_point))

    def cast(self, q: np.ndarray) -> np.ndarray:
        """Values already in this tensor's integer units -> its dtype (rounded, clipped)."""
        info = np.iinfo(self.dtype)
        return np.clip(np.rint(q), info.min, info.max).astype(self.dtype)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """This tensor's values -> float32 real values."""
        if self.quantized:
            return (raw.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
        return raw.astype(np.float32, copy=False)

    def pixel_affine(self, lo: float, hi: float, model: str) -> tuple[float, float]:
        """``(a, b)`` with ``tensor value = pixel * a + b`` for images whose pixels 0..255 mean ``lo..hi``."""
        a, b = (hi - lo) / 255.0, lo
        if not self.quantized:
            return a, b
        if not self.scale:
            raise ModelError(
                f"{model} has a {self.dtype} input without quantization parameters.",
                "re-convert it with a calibrated input.",
            )
        return a / self.scale, b / self.scale + self.zero_point


class TFLiteModel:
    """A ``.tflite`` with its metadata, interpreter and tensor specs; the base of every model kind.

    ``edgetpu``: ``auto`` uses the Edge TPU when the model is compiled for it, ``on``/``off`` force it.
    ``edgetpu_device``: which Edge TPU (``usb``, ``usb:0``, ``pci:0``, ``:0``; pycoral's names), ``None`` for any.
    ``delegate``: any other external delegate (a SoC's NPU, see :func:`edgepose.model.runtime.configured_delegate`);
    the Edge TPU is one such delegate, so a model takes one or the other.
    """

    #: The metadata ``model_type`` this class opens (the registry's key).
    model_type: ClassVar[str] = DEFAULT_MODEL_TYPE
    #: The noun and the fix used when the file is missing.
    what: ClassVar[str] = "model"
    missing_fix: ClassVar[str] = "check the path, or use a name from 'edgepose models list'."

    def __init__(
        self,
        model: str | Path | bytes,
        threads: int = 1,
        *,
        edgetpu: str = "auto",
        edgetpu_device: str | None = None,
        name: str | None = None,
        delegate: DelegateSpec | None = None,
    ):
        buf, default_name = read_model_bytes(model, self.what, self.missing_fix)
        self.name = name or default_name
        flatbuf.check_tflite(buf, self.name)  # first: an empty file, a JPEG or a .gz is named as such
        self.metadata: dict[str, Any] | None = flatbuf.read_metadata(buf, self.name)
        self._check_metadata(self.metadata)
        buf = self._prepare(buf)
        self.model_t = flatbuf.load_model_t(buf, self.name)
        needs_tpu = flatbuf.EDGETPU_OP in set(flatbuf.custom_op_names(self.model_t))
        use_tpu = needs_tpu if edgetpu == "auto" else edgetpu == "on"
        if needs_tpu and not use_tpu:
            raise ModelError(
                f"{self.name} is compiled for the Edge TPU, but the Edge TPU was turned off.",
                'use the CPU build of the model or set edgetpu = "auto".',
            )
        if use_tpu and delegate is not None:
            raise ModelError(
                f"{self.name} is set to run on the Edge TPU and on the delegate {delegate.library}; a model runs on one.",
                'remove model.delegate for Edge TPU models, or set model.edgetpu = "off" with a CPU build of the model.',
            )
        self.edgetpu = use_tpu
        self.edgetpu_device = edgetpu_device if use_tpu else None
        spec = edgetpu_delegate(edgetpu_device) if use_tpu else delegate
        self.interpreter, used = make_interpreter_with(buf, threads, spec, name=self.name)
        #: The delegate the interpreter runs with (None: the CPU, including after a configured fallback).
        self.delegate = spec if used else None
        self.runtime = get_backend().name
        if self.delegate is not None and not use_tpu:
            self.runtime += f" (delegate {Path(self.delegate.library).name})"
        self.inputs = [TensorSpec.from_detail(d) for d in self.interpreter.get_input_details()]
        self.output_specs = [TensorSpec.from_detail(d) for d in self.interpreter.get_output_details()]

    # ------------------------------------------------------------------ hooks for the kinds
    def _check_metadata(self, meta: dict[str, Any] | None) -> None:
        """Refuse a file of another kind before building an interpreter for it."""
        kind = model_type(meta)
        if kind != self.model_type:
            raise ModelError(
                f"{self.name} is a '{kind}' model, not a '{self.model_type}' model.",
                "pass a model of the right kind, or open it with 'edgepose.model.registry.open_model'.",
            )

    def _prepare(self, buf: bytes) -> bytes:
        """The flatbuffer the interpreter runs (PoseNet cuts Coral's decoder op off here)."""
        return buf

    # ------------------------------------------------------------------ tensors
    def single_image_input(self, what: str, fix: str) -> TensorSpec:
        """The one ``[1, H, W, 3]`` input of an image model, else a :class:`ModelError`."""
        if len(self.inputs) != 1 or len(self.inputs[0].shape) != 4 or self.inputs[0].shape[3] != 3:
            raise ModelError(
                f"{self.name} has inputs {[list(s.shape) for s in self.inputs]}; {what} takes one [1, H, W, 3] image.",
                fix,
            )
        spec = self.inputs[0]
        if spec.dtype not in (np.float32, np.uint8, np.int8):
            raise ModelError(
                f"{self.name} has an unsupported input type {spec.dtype}.", "use a float32, uint8 or int8 model."
            )
        return spec

    def set_input(self, tensor: np.ndarray, spec: TensorSpec | None = None) -> None:
        self.interpreter.set_tensor((spec or self.inputs[0]).index, tensor)

    def invoke(self, tensor: np.ndarray) -> None:
        """Run the model on one input tensor (already in the input's dtype)."""
        self.set_input(tensor)
        self.interpreter.invoke()

    def output(self, spec: TensorSpec) -> np.ndarray:
        """The last invocation's output ``spec`` (batch 1 removed), dequantized to float32."""
        return spec.dequantize(self.interpreter.get_tensor(spec.index)[0])


@runtime_checkable
class KeypointModel(Protocol):
    """What the pipeline needs of its main model (``PoseNetModel`` is one)."""

    name: str
    runtime: str

    @property
    def input_size(self) -> tuple[int, int]: ...

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def invoke(self, tensor: np.ndarray) -> None: ...

    def heads(self) -> Any: ...

    def decode(
        self,
        heads: Any,
        transform: Any,
        max_poses: int | None = None,
        min_pose_score: float | None = None,
        nms_radius: float | None = None,
        mode: str | None = None,
    ) -> list: ...

    def decoder_settings(self) -> dict[str, Any]: ...
