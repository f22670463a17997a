"""Reading a TensorFlow.js graph model (``model.json`` + ``group*-shard*of*.bin``).

Format (tfjs-converter): ``modelTopology`` is a TensorFlow ``GraphDef`` in
proto-JSON whose ``Const`` weight nodes carry no data; ``weightsManifest`` is a
list of groups, each with the shard ``paths`` (concatenated in order) and the
``weights`` stored in them, one after the other. A weight may be quantized:
``quantization.dtype`` ``uint8``/``uint16`` with ``min`` and ``scale``
(``value = q * scale + min``), or ``float16``. tfjs-converter also fuses ops
into ``_FusedConv2D`` / ``FusedDepthwiseConv2dNative`` / ``_FusedMatMul``;
they are split back into plain TensorFlow ops so that any TensorFlow and the
TFLite converter can read the graph.

The numpy part (manifest and dequantization) needs no TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConvertError

_DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "float16": np.float16,
    "uint8": np.uint8,
    "uint16": np.uint16,
}


def is_tfjs_model(path: Path) -> bool:
    if path.is_dir():
        return any(path.glob("*.json")) and any(_looks_like_tfjs(p) for p in path.glob("*.json"))
    return path.suffix == ".json" and _looks_like_tfjs(path)


def _looks_like_tfjs(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
    except OSError:
        return False
    return b"weightsManifest" in head or b"modelTopology" in head


def find_model_json(path: Path) -> Path:
    if path.is_file():
        return path
    cands = sorted(p for p in path.glob("*.json") if _looks_like_tfjs(p))
    if len(cands) != 1:
        raise ConvertError(
            f"{path} holds {len(cands)} TensorFlow.js model files ({', '.join(c.name for c in cands) or 'none'}).",
            "pass the model-stride*.json file itself.",
        )
    return cands[0]


def read_model_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConvertError(
            f"{path} is not readable TensorFlow.js model JSON ({e}).", "re-download model-stride*.json."
        ) from None
    if not isinstance(doc, dict) or "modelTopology" not in doc or "weightsManifest" not in doc:
        raise ConvertError(
            f"{path} has no modelTopology/weightsManifest.", "pass a TensorFlow.js *graph* model (model-stride*.json)."
        )
    if doc.get("format") not in (None, "graph-model"):
        raise ConvertError(
            f"{path} is a TensorFlow.js {doc.get('format')!r} model, not a graph model.",
            "convert the layers model with Keras (tensorflowjs_converter --output_format keras) and pass the .h5/.keras file.",
        )
    return doc


def dequantize(raw: np.ndarray, quant: dict[str, Any] | None, original_dtype: str = "float32") -> np.ndarray:
    """tfjs weight quantization undone: affine ``q*scale+min`` for uint8/uint16, a cast for float16."""
    if not quant:
        return raw
    qd = quant.get("dtype")
    if qd == "float16":
        return raw.astype(np.float32)
    if qd in ("uint8", "uint16"):
        scale = float(quant["scale"])
        vmin = float(quant["min"])
        out = raw.astype(np.float32) * scale + vmin
        if original_dtype == "int32":
            return np.round(out).astype(np.int32)
        return out.astype(np.float32)
    raise ConvertError(
        f"unknown TensorFlow.js weight quantization {qd!r}.", "use a float, quant1 (uint8) or quant2 (uint16) model."
    )


def read_weights(model_json: Path, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """All weights of the manifest, dequantized, by name."""
    base = Path(model_json).parent
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        chunks = []
        for rel in group.get("paths", []):
            p = base / rel
            try:
                chunks.append(p.read_bytes())
            except OSError as e:
                raise ConvertError(
                    f"weight shard {p} cannot be read ({e.strerror or e}).",
                    f"put every group*-shard*.bin file beside {Path(model_json).name}.",
                ) from None
        data = b"".join(chunks)
        offset = 0
        for w in group.get("weights", []):
            quant = w.get("quantization")
            dtype = w.get("dtype", "float32")
            stored = quant["dtype"] if quant else dtype
            if stored not in _DTYPES or dtype not in _DTYPES:
                raise ConvertError(
                    f"weight {w.get('name')} has unsupported dtype {stored!r}.",
                    "use a float32/uint8/uint16/float16 model.",
                )
            shape = [int(d) for d in w.get("shape", [])]
            npd = np.dtype(_DTYPES[stored]).newbyteorder("<")
            n = int(np.prod(shape)) if shape else 1
            size = n * npd.itemsize
            if offset + size > len(data):
                raise ConvertError(
                    f"weight shards of {Path(model_json).name} are {len(data)} bytes, too short for weight {w['name']} (needs {offset + size}).",
                    "re-download the group*-shard*.bin files; one is truncated or missing.",
                )
            raw = np.frombuffer(data, dtype=npd, count=n, offset=offset).reshape(shape)
            offset += size
            # Quantized weights come back as their original dtype (float32, or int32 for integer tensors).
            out[w["name"]] = dequantize(raw, quant, dtype).astype(_DTYPES[dtype])
        if offset != len(data):
            raise ConvertError(
                f"weight shards of {Path(model_json).name} hold {len(data)} bytes but the manifest describes {offset}.",
                "the .bin files do not belong to this model.json; re-download both.",
            )
    return out


def to_graph_def(model_json: Path):
    """The tfjs graph model as a TensorFlow ``GraphDef`` with weights filled in and fused ops split."""
    from google.protobuf import json_format

    from .errors import import_tensorflow

    tf = import_tensorflow()
    doc = read_model_json(model_json)
    weights = read_weights(model_json, doc["weightsManifest"])
    gd = tf.compat.v1.GraphDef()
    topo = dict(doc["modelTopology"])
    if not topo.get("library"):
        topo.pop("library", None)  # tfjs writes {} where GraphDef has no function library
    try:
        json_format.ParseDict(topo, gd, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise ConvertError(
            f"{model_json} modelTopology is not a GraphDef ({e}).", "pass a TensorFlow.js graph model."
        ) from None
    missing = []
    for node in gd.node:
        if node.op == "Const" and node.name in weights:
            arr = weights[node.name]
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr, dtype=tf.as_dtype(arr.dtype)))
            node.attr["dtype"].type = tf.as_dtype(arr.dtype).as_datatype_enum
        elif node.op == "Const" and not node.attr["value"].tensor.tensor_content and not _has_inline_value(node):
            missing.append(node.name)
    if missing:
        raise ConvertError(
            f"{model_json.name} names weights that are not in its manifest: {', '.join(missing[:3])}.",
            "re-download the model; the JSON and the .bin files do not match.",
        )
    return unfuse(gd, tf)


def _has_inline_value(node) -> bool:
    t = node.attr["value"].tensor
    return bool(t.float_val or t.int_val or t.bool_val or t.string_val or t.int64_val or t.half_val)


_ACTIVATIONS = {
    "Relu": "Relu",
    "Relu6": "Relu6",
    "Elu": "Elu",
    "Sigmoid": "Sigmoid",
    "Tanh": "Tanh",
    "LeakyRelu": "LeakyRelu",
    "Prelu": "Prelu",
}


def unfuse(gd, tf):
    """Split tfjs/grappler fused ops into ``Conv2D``/``DepthwiseConv2dNative``/``MatMul`` + ``BiasAdd`` + activation."""
    base_op = {
        "_FusedConv2D": "Conv2D",
        "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
        "_FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
        "_FusedMatMul": "MatMul",
    }
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(gd.versions)
    for node in gd.node:
        if node.op not in base_op:
            out.node.add().CopyFrom(node)
            continue
        fused = [s.decode() for s in node.attr["fused_ops"].list.s]
        inputs = list(node.input)
        x, w, extra = inputs[0], inputs[1], inputs[2:]
        core = out.node.add()
        core.name = node.name + "/core"
        core.op = base_op[node.op]
        core.input.extend([x, w])
        for k, v in node.attr.items():
            if k in ("fused_ops", "num_args", "epsilon", "leakyrelu_alpha", "num_host_args", "filter_format"):
                continue
            core.attr[k].CopyFrom(v)
        if "T" not in core.attr:
            core.attr["T"].type = tf.float32.as_datatype_enum
        last = core.name
        args = list(extra)
        chain = [op for op in fused if op]
        for i, op in enumerate(chain):
            n = out.node.add()
            n.name = node.name if i == len(chain) - 1 else f"{node.name}/{op}"
            n.attr["T"].type = core.attr["T"].type
            if op == "BiasAdd":
                n.op = "BiasAdd"
                n.input.extend([last, args.pop(0)])
                if "data_format" in node.attr:
                    n.attr["data_format"].CopyFrom(node.attr["data_format"])
            elif op == "Prelu":
                # prelu(x) = relu(x) - alpha * relu(-x)
                alpha = args.pop(0)
                for suffix, opn, ins in (
                    ("/pos", "Relu", [last]),
                    ("/neg_in", "Neg", [last]),
                    ("/neg", "Relu", [node.name + "/neg_in"]),
                    ("/scaled", "Mul", [alpha, node.name + "/neg"]),
                ):
                    m = out.node.add()
                    m.name, m.op = node.name + suffix, opn
                    m.input.extend(ins)
                    m.attr["T"].CopyFrom(n.attr["T"])
                n.op = "Sub"
                n.input.extend([node.name + "/pos", node.name + "/scaled"])
            elif op in _ACTIVATIONS:
                n.op = _ACTIVATIONS[op]
                n.input.append(last)
                if op == "LeakyRelu":
                    n.attr["alpha"].f = node.attr["leakyrelu_alpha"].f or 0.2
            else:
                raise ConvertError(
                    f"fused op {node.name} contains {op!r}, which the converter cannot split.",
                    "re-export the tfjs model without op fusion, or pass the SavedModel.",
                )
            last = n.name
        if not chain:
            core.name = node.name
    return out
