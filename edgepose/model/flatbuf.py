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


#: What a file that is not a .tflite usually is, by its first bytes: (magic, what it is, the fix).
_NOT_TFLITE = [
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip FILE.tflite.gz) and pass the .tflite."),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz FILE.tflite.xz) and pass the .tflite."),
    (b"PK\x03\x04", "a zip archive", "unzip it and pass the .tflite inside."),
    (b"\xff\xd8\xff", "a JPEG image", "pass the model with --model and the image with --source."),
    (b"\x89PNG", "a PNG image", "pass the model with --model and the image with --source."),
]
TFLITE_FIX = (
    "pass a .tflite file, e.g. one from 'edgepose models fetch' or 'edgepose convert'; "
    "re-download it if it was truncated."
)


def check_tflite(buf: bytes, name: str = "model") -> None:
    """Raise a :class:`ModelError` unless ``buf`` looks like a TFLite flatbuffer (saying what it is instead when known)."""
    if len(buf) >= 8 and buf[4:8] == TFLITE_IDENTIFIER:
        return
    if not buf:
        raise ModelError(
            f"{name} is empty (0 bytes), not a TFLite model.", "re-download or re-convert it; " + TFLITE_FIX
        )
    for magic, what, fix in _NOT_TFLITE:
        if buf.startswith(magic):
            raise ModelError(f"{name} is {what}, not a TFLite model.", fix)
    head = buf[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        what = (
            "an HTML page (a failed download?)"
            if "<html" in text.lower() or "<!doctype" in text.lower()
            else "a text file"
        )
        raise ModelError(f"{name} is {what}, not a TFLite model ({len(buf)} bytes).", TFLITE_FIX)
    if buf[:1] == b"\x0a" and any(w in head for w in (b"Placeholder", b"Const", b"Conv2D")):  # GraphDef: field 1, node
        raise ModelError(
            f"{name} looks like a TensorFlow GraphDef (.pb), not a TFLite model.",
            f"convert it first: edgepose convert {name} --out model.tflite.",
        )
    raise ModelError(f"{name} is not a TFLite model (no 'TFL3' identifier; {len(buf)} bytes).", TFLITE_FIX)


#: Byte size of one element per TensorType name (types packed below a byte or of variable size are not sized).
_TYPE_BYTES = {
    "FLOAT32": 4,
    "FLOAT16": 2,
    "INT32": 4,
    "UINT8": 1,
    "INT64": 8,
    "BOOL": 1,
    "INT16": 2,
    "COMPLEX64": 8,
    "INT8": 1,
    "FLOAT64": 8,
    "COMPLEX128": 16,
    "UINT64": 8,
    "UINT32": 4,
    "UINT16": 2,
    "BFLOAT16": 2,
    "FLOAT8_E4M3FN": 1,
    "FLOAT8_E5M2": 1,
}
#: The largest tensor and the most tensor memory a model for this project may ask the interpreter for. PoseNet at
#: 721x1281 needs about 40 MB in all; a flipped bit in a shape asks for gigabytes and the kernel kills the process.
MAX_TENSOR_BYTES = 512 << 20
MAX_TOTAL_TENSOR_BYTES = 2 << 30


def check_structure(model_t, name: str = "model") -> None:
    """Refuse what the interpreter would crash or run out of memory on: indices out of range, impossible shapes.

    The TFLite runtime verifies the flatbuffer's own layout (offsets inside the file) when it builds the model, and
    :func:`load_model_t` fails on offsets Python cannot follow; neither checks what the tables mean. A flipped bit
    in a tensor shape, a tensor, buffer or opcode index then reaches allocate_tensors (a multi-GB allocation: killed
    by the kernel) or invoke. This checks those meanings on the unpacked model, in one pass, in pure Python.
    """
    s = _schema()
    type_names = {v: k for k, v in vars(s.TensorType).items() if k.isupper()}

    def bad(what: str) -> ModelError:
        return ModelError(f"{name} is a corrupt TFLite file ({what}).", "re-download or re-convert it.")

    buffers = model_t.buffers or []
    codes = model_t.operatorCodes or []
    if not model_t.subgraphs:
        raise bad("no subgraph")
    total = 0
    for g, sg in enumerate(model_t.subgraphs):
        tensors = sg.tensors or []
        n = len(tensors)
        for t_i, t in enumerate(tensors):
            shape = [int(d) for d in (t.shape if t.shape is not None else [])]
            if any(d < 0 for d in shape):
                raise bad(f"tensor {t_i} has the shape {shape}")
            if t.type not in type_names:
                raise bad(f"tensor {t_i} has the unknown type {t.type}")
            if not 0 <= int(t.buffer) < max(len(buffers), 1):
                raise bad(f"tensor {t_i} refers to buffer {t.buffer} of {len(buffers)}")
            size = _TYPE_BYTES.get(type_names[t.type])
            if size is None:
                continue
            count = 1
            for d in shape:
                count *= d
            nbytes = count * size
            if nbytes > MAX_TENSOR_BYTES:
                raise bad(f"tensor {t_i} of shape {shape} would need {nbytes / 2**20:.0f} MiB")
            data = buffers[t.buffer].data if buffers else None
            if data is not None and len(data):
                if len(data) != nbytes:
                    raise bad(f"tensor {t_i} of shape {shape} has {len(data)} bytes of data, not {nbytes}")
            else:
                total += nbytes
        if total > MAX_TOTAL_TENSOR_BYTES:
            raise bad(f"its tensors would need {total / 2**30:.1f} GiB")
        for role, idx in (("input", sg.inputs), ("output", sg.outputs)):
            for i in idx if idx is not None else []:
                if not 0 <= int(i) < n:
                    raise bad(f"subgraph {g} {role} {int(i)} is not one of its {n} tensors")
        for o_i, op in enumerate(sg.operators or []):
            if not 0 <= int(op.opcodeIndex) < len(codes):
                raise bad(f"operator {o_i} has opcode {op.opcodeIndex} of {len(codes)}")
            for role, idx in (("input", op.inputs), ("output", op.outputs), ("intermediate", op.intermediates)):
                for i in idx if idx is not None else []:
                    if not -1 <= int(i) < n:  # -1: an optional input left out
                        raise bad(f"operator {o_i} {role} {int(i)} is not one of the {n} tensors")


def load_model_t(buf: bytes, name: str = "model", check: bool = True):
    """Unpack a flatbuffer into the mutable object API (``ModelT``), checked by :func:`check_structure` unless told not."""
    check_tflite(buf, name)
    s = _schema()
    try:
        model_t = s.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception as e:  # corrupt offsets raise IndexError/struct.error deep inside
        raise ModelError(
            f"{name} is a corrupt TFLite file ({type(e).__name__}: {str(e)[:120]}).", "re-download or re-convert it."
        ) from None
    if check:
        check_structure(model_t, name)  # every caller indexes subgraphs[0], tensors and opcodes with these values
    return model_t


def pack_model_t(model_t) -> bytes:
    builder = flatbuffers.Builder(1024 * 1024)
    builder.Finish(model_t.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def op_code_name(model_t, opcode_index: int) -> str:
    oc = model_t.operatorCodes[opcode_index]
    if oc.customCode:
        return oc.customCode.decode("utf-8", "replace") if isinstance(oc.customCode, bytes) else str(oc.customCode)
    code = max(oc.builtinCode or 0, oc.deprecatedBuiltinCode or 0)
    s = _schema()
    for k, v in vars(s.BuiltinOperator).items():
        if v == code and not k.startswith("_"):
            return k
    return str(code)


def custom_op_names(model_t) -> list[str]:
    return [op_code_name(model_t, op.opcodeIndex) for op in model_t.subgraphs[0].operators]


# --------------------------------------------------------------------------- metadata


def read_metadata(buf: bytes, name: str = "the model") -> dict[str, Any] | None:
    """edgepose's metadata dict, or ``None`` when the model has none."""
    s = _schema()
    check_tflite(buf, name)
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
        raise ModelError(
            f"{name} is a corrupt TFLite file ({type(e).__name__}: {str(e)[:120]}).", "re-download or re-convert it."
        ) from None
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{name}'s edgepose metadata is not valid JSON ({e}).", "re-convert the model.") from None


def write_metadata(buf: bytes, meta: dict[str, Any]) -> bytes:
    """Return ``buf`` with edgepose's metadata set to ``meta`` (replacing any earlier one)."""
    s = _schema()
    model_t = load_model_t(buf)
    payload = json.dumps(meta, sort_keys=True).encode("utf-8")
    model_t.metadata = [
        md for md in (model_t.metadata or []) if (md.name or b"") not in (METADATA_NAME, METADATA_NAME.encode())
    ]
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
        raise ModelError(
            f"{name}: cannot read PosenetDecoderOp options ({e}).", "use the raw *_quant.tflite model instead."
        ) from None
    inputs = [int(t) for t in op.inputs]
    if len(inputs) != 3:
        raise ModelError(
            f"{name}: PosenetDecoderOp has {len(inputs)} inputs, not 3 (heatmaps, offsets, displacements).",
            "use the raw *_quant.tflite model instead.",
        )
    names = (
        _tensor_name(sg.tensors[inputs[0]]),
        _tensor_name(sg.tensors[inputs[1]]),
        _tensor_name(sg.tensors[inputs[2]]),
    )
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
    return n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
