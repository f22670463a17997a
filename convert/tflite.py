"""TFLite conversion in each precision, output-role mapping and running converted models.

Output roles are never taken from tensor order: the TF2 converter renames and
reorders outputs (``StatefulPartitionedCall:0..3``, displacements swapped).
:func:`map_output_roles` runs the converted model and the source on the same
input and pairs each output with the source output it reproduces.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from edgepose.errors import first_line
from edgepose.progress import bar as progress_bar
from edgepose.tflogs import native_quiet

from .errors import ConvertError, import_tensorflow
from .model_types import PRECISIONS

log = logging.getLogger(__name__)


#: weight rounding choices (see :attr:`QuantOptions.rounding`): ``edgepose convert --rounding`` and the converter check these
ROUNDINGS: tuple[str, ...] = ("all", "depthwise", "nearest")


@dataclass(frozen=True)
class QuantOptions:
    """Choices of full-integer quantization (each one measured by the fidelity benchmark)."""

    #: dtype of the model's input and outputs: "uint8" (Coral's convention) or "int8"
    io_type: str = "uint8"
    #: one scale per output channel of each conv (TFLite's default); False = one per tensor
    per_channel: bool = True
    #: keep the last layers (the 1x1 output heads) in float: better accuracy, CPU-only heads
    float_heads: bool = False
    #: add mirrored images to the calibration set
    mirror: bool = True
    #: weight rounding (GraphDef sources; see convert.rounding): "all" output-aware rounding of every
    #: convolution, "depthwise" of depthwise filters only, "nearest" TFLite's plain rounding
    rounding: str = "all"
    #: activation-range equalization before quantizing (GraphDef sources; see convert.equalize)
    equalize: bool = False
    #: largest per-channel factor equalization may apply
    max_scale: float = 8.0
    #: ReLU6 channels keep this factor above their calibration maximum (float function unchanged)
    headroom: float = 2.0


# --------------------------------------------------------------------------- conversion


def convert_function(
    fn,
    precision: str,
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
    quant: QuantOptions = QuantOptions(),
    edgetpu: bool = False,
) -> bytes:
    """Convert a concrete function to ``.tflite`` bytes in ``precision``."""
    tf = import_tensorflow()

    def make():
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], fn)
        if precision == "float32":
            pass
        elif precision == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif precision == "dynamic":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            if representative is None:
                raise ConvertError("int8 needs calibration images.", "pass --calibration FOLDER_OR_VIDEO.")
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            io = {"uint8": tf.uint8, "int8": tf.int8}[quant.io_type]
            conv.inference_input_type = io
            if quant.float_heads and not edgetpu:
                # Heads stay float (their outputs are float32); the backbone is int8.
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            else:
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                conv.inference_output_type = io
            if not quant.per_channel:
                conv._experimental_disable_per_channel = True
        else:
            raise ConvertError(f"unknown precision {precision!r}.", f"use one of {', '.join(PRECISIONS)}.")
        return conv

    conv = make()
    try:
        with native_quiet(stdout=True):  # the converter's own log lines and printed signatures (shown with -v)
            if precision == "int8" and quant.float_heads and not edgetpu:
                return _convert_float_heads(tf, conv, fn, representative)
            return bytes(conv.convert())
    except ConvertError:
        raise
    except Exception as e:
        raise ConvertError(
            f"the TFLite converter failed for {precision} ({first_line(e, 400)}).",
            "check the source model uses standard TensorFlow ops; run with -vv for the converter log.",
        ) from None


def _convert_float_heads(tf, conv, fn, representative) -> bytes:
    """Full-int8 backbone, float output heads: the quantization debugger's denylist on the heads' ops."""
    float_model = bytes(tf.lite.TFLiteConverter.from_concrete_functions([fn], fn).convert())
    heads = head_tensor_names(float_model)
    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=heads)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=representative, debug_options=opts
    )
    return bytes(debugger.get_nondebug_quantized_model())


def head_tensor_names(float_model: bytes) -> list[str]:
    """Names of the model outputs' producing ops (the 1x1 conv heads) in a float ``.tflite``."""
    from edgepose.model.flatbuf import load_model_t

    m = load_model_t(float_model)
    sg = m.subgraphs[0]
    names = []
    for t in sg.outputs:
        n = sg.tensors[t].name
        names.append(n.decode() if isinstance(n, bytes) else str(n))
    return names


def representative_dataset(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    mirror: bool = True,
    progress: bool | None = None,
    desc: str = "calibrating",
):
    """A callable for ``converter.representative_dataset`` showing a progress bar."""
    from .calibration import augment, preprocess

    def gen():
        seq = list(augment(images)) if mirror else list(images)
        for img in progress_bar(desc=desc, unit="img", progress=progress, items=seq, leave=False):
            yield [preprocess(img, size)]

    return gen


# --------------------------------------------------------------------------- running


class TFLiteRunner:
    """A converted model on ai-edge-litert: float in, dequantized float outputs by tensor name.

    The (de)quantization is the runtime's own (:class:`edgepose.model.base.TensorSpec`), so the fidelity
    report measures what a device computes.
    """

    def __init__(self, model: bytes, threads: int = 2):
        from edgepose.model.base import TensorSpec
        from edgepose.model.runtime import make_interpreter

        self.interp = make_interpreter(model, num_threads=threads, name="converted model")
        #: the interpreter's tensor details (dicts), and their specs that do the (de)quantization
        self.input = self.interp.get_input_details()[0]
        self.outputs = self.interp.get_output_details()
        self._input = TensorSpec.from_detail(self.input)
        self._outputs = [TensorSpec.from_detail(d) for d in self.outputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self._outputs]

    def set_input(self, x: np.ndarray) -> None:
        self.interp.set_tensor(self._input.index, self._input.quantize(x))

    def invoke(self) -> None:
        self.interp.invoke()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.set_input(x)
        self.invoke()
        return {t.name: t.dequantize(self.interp.get_tensor(t.index)) for t in self._outputs}


def map_output_roles(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, str]:
    """role -> output tensor name, pairing each converted output with the reference output it matches best.

    Shapes split the candidates; among equal shapes (forward/backward displacements) the
    assignment with the smallest total normalised error wins.
    """
    names = list(outputs)
    roles = list(reference)
    if len(names) != len(roles):
        raise ConvertError(
            f"the converted model has {len(names)} outputs, the source {len(roles)}.", "report this as a converter bug."
        )
    best: tuple[float, dict[str, str]] | None = None
    for perm in itertools.permutations(names):
        if any(outputs[n].shape != reference[r].shape for n, r in zip(perm, roles)):
            continue
        cost = 0.0
        for n, r in zip(perm, roles):
            ref = reference[r]
            cost += float(np.mean(np.abs(outputs[n] - ref)) / (np.std(ref) + 1e-6))
        if best is None or cost < best[0]:
            best = (cost, dict(zip(roles, perm)))
    if best is None:
        raise ConvertError(
            f"the converted outputs {[(n, outputs[n].shape) for n in names]} do not match the source's {[(r, reference[r].shape) for r in roles]}.",
            "report this as a converter bug.",
        )
    return best[1]
