"""Reading and rewriting ``.tflite`` flatbuffers without TensorFlow.

The schema bindings are edgepose's copy of ai-edge-litert's (``tflite_schema``); the
``flatbuffers`` package provides the builder and the flexbuffer reader used
for custom-op options. Two jobs need this on the device:

* reading and writing edgepose's JSON metadata (``edgepose`` metadata entry),
* cutting a model in front of Coral's ``PosenetDecoderOp`` so that the
  backbone runs on any runtime and edgepose decodes in numpy.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import flatbuffers
from flatbuffers import flexbuffers

from ..errors import ModelError

METADATA_NAME = "edgepose"
TFLITE_IDENTIFIER = b"TFL3"
POSENET_DECODER_OP = "PosenetDecoderOp"
EDGETPU_OP = "edgetpu-custom-op"


def _schema():
    # edgepose's own copy: tflite-runtime (Termux, older boards) ships no schema bindings.
    from . import tflite_schema

    return tflite_schema


def check_tflite(buf: bytes, name: str = "model") -> None:
    """Raise a :class:`ModelError` unless ``buf`` looks like a TFLite flatbuffer."""
    if len(buf) < 8 or buf[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{name} is not a TFLite model (no 'TFL3' identifier; {len(buf)} bytes).",
            "pass a .tflite file, e.g. one from 'edgepose models fetch' or 'edgepose convert'; "
            "re-download it if it was truncated.",
        )


def load_model_t(buf: bytes, name: str = "model"):
    """Unpack a flatbuffer into the mutable object API (``ModelT``)."""
    check_tflite(buf, name)
    s = _schema()
    try:
        return s.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception as e:  # corrupt offsets raise IndexError/struct.error deep inside
        raise ModelError(f"{name} is a corrupt TFLite file ({type(e).__name__}: {e}).", "re-download or re-convert it.") from None


def pack_model_t(model_t) -> bytes:
    builder = flatbuffers.Builder(1024 * 1024)
    builder.Finish(model_t.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def op_code_name(model_t, opcode_index: int) -> str:
    oc = model_t.operatorCodes[opcode_index]
    if oc.customCode:
        return oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
    code = max(oc.builtinCode or 0, oc.deprecatedBuiltinCode or 0)
    s = _schema()
    for k, v in vars(s.BuiltinOperator).items():
        if v == code and not k.startswith("_"):
            return k
    return str(code)


def custom_op_names(model_t) -> list[str]:
    return [op_code_name(model_t, op.opcodeIndex) for op in model_t.subgraphs[0].operators]


# --------------------------------------------------------------------------- metadata

def read_metadata(buf: bytes) -> dict[str, Any] | None:
    """edgepose's metadata dict, or ``None`` when the model has none."""
    s = _schema()
    check_tflite(buf)
    try:
        m = s.Model.GetRootAsModel(buf, 0)
        data = None
        for i in range(m.MetadataLength()):
            md = m.Metadata(i)
            if (md.Name() or b"").decode() == METADATA_NAME:
                data = bytes(m.Buffers(md.Buffer()).DataAsNumpy())
                break
    except (struct.error, IndexError, ValueError, AttributeError, TypeError, UnicodeDecodeError) as e:
        # A valid header over damaged contents: offsets point outside the file.
        raise ModelError(f"the model is a corrupt TFLite file ({type(e).__name__}: {str(e)[:120]}).",
                         "re-download or re-convert it.") from None
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"the model's edgepose metadata is not valid JSON ({e}).", "re-convert the model.") from None


def write_metadata(buf: bytes, meta: dict[str, Any]) -> bytes:
    """Return ``buf`` with edgepose's metadata set to ``meta`` (replacing any earlier one)."""
    s = _schema()
    model_t = load_model_t(buf)
    payload = json.dumps(meta, sort_keys=True).encode("utf-8")
    model_t.metadata = [md for md in (model_t.metadata or []) if (md.name or b"") not in (METADATA_NAME, METADATA_NAME.encode())]
    b = s.BufferT()
    b.data = list(payload)
    model_t.buffers.append(b)
    md = s.MetadataT()
    md.name = METADATA_NAME
    md.buffer = len(model_t.buffers) - 1
    model_t.metadata.append(md)
    return pack_model_t(model_t)


# --------------------------------------------------------------------------- decoder op

@dataclass
class DecoderOpInfo:
    """What Coral's ``PosenetDecoderOp`` was configured with (its custom options)."""

    max_detections: int
    score_threshold: float
    nms_radius: float
    stride: int
    #: Tensor names of the op's three inputs: heatmaps, short offsets, mid offsets.
    input_names: tuple[str, str, str]


def cut_decoder_op(buf: bytes, name: str = "model") -> tuple[bytes, DecoderOpInfo | None]:
    """Remove a trailing ``PosenetDecoderOp``: the op's inputs become the model outputs.

    Returns the (possibly unchanged) model bytes and the op's settings.
    """
    model_t = load_model_t(buf, name)
    sg = model_t.subgraphs[0]
    idx = [i for i, op in enumerate(sg.operators) if op_code_name(model_t, op.opcodeIndex) == POSENET_DECODER_OP]
    if not idx:
        return buf, None
    op = sg.operators[idx[0]]
    try:
        opts = flexbuffers.Loads(bytes(op.customOptions))
    except Exception as e:
        raise ModelError(f"{name}: cannot read PosenetDecoderOp options ({e}).", "use the raw *_quant.tflite model instead.") from None
    inputs = [int(t) for t in op.inputs]
    if len(inputs) != 3:
        raise ModelError(f"{name}: PosenetDecoderOp has {len(inputs)} inputs, not 3 (heatmaps, offsets, displacements).", "use the raw *_quant.tflite model instead.")
    names = (_tensor_name(sg.tensors[inputs[0]]), _tensor_name(sg.tensors[inputs[1]]), _tensor_name(sg.tensors[inputs[2]]))
    info = DecoderOpInfo(
        max_detections=int(opts.get("max_detections", 10)),
        score_threshold=float(opts.get("score_threshold", 0.5)),
        nms_radius=float(opts.get("nms_radius", 20.0)),
        stride=int(opts.get("stride", 16)),
        input_names=names,
    )
    del sg.operators[idx[0]]
    sg.outputs = inputs
    # The op's custom code stays in operatorCodes: unused codes are harmless to the runtime.
    return pack_model_t(model_t), info


def _tensor_name(t) -> str:
    n = t.name
    return n.decode() if isinstance(n, bytes) else str(n)
