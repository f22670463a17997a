"""Test support for the converter: source models built from the real PoseNet weights.

Imported by tests/test_convert*.py (not a pytest conftest: helpers and a
process-wide cache, so a conversion is done once per test session).

:func:`write_tfjs_graph_model` writes a TensorFlow.js graph model the way
tfjs-converter publishes PoseNet (``model-stride16.json`` + ``group1-shard*of*.bin``):
``modelTopology`` is the GraphDef in proto-JSON with empty ``Const`` weight
nodes, the input is ``sub_2``, outputs ``MobilenetV1/<head>_2/BiasAdd`` (the heatmap
as logits), Identity ``read`` nodes folded away, weights listed in the manifest in
order and stored in 4 MB shards, optionally quantized per tensor to
uint8/uint16 with ``min``/``scale`` (``value = q * scale + min``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from tests.conftest import SHARED

FROZEN = SHARED / "models" / "posenet-python" / "model-mobilenet_v1_050.pb"
CHECKPOINT = SHARED / "models" / "posenet-python" / "checkpoints" / "model-mobilenet_v1_050.ckpt"
COUPLE = SHARED / "images" / "test_couple.jpg"
COCO = SHARED / "images" / "coco"
VIDEO = SHARED / "video" / "openpose_video.avi"
SHARD_BYTES = 4 * 1024 * 1024
HEADS = ("heatmap_2", "offset_2", "displacement_fwd_2", "displacement_bwd_2")


def tfjs_quantize(w: np.ndarray, dtype: str) -> tuple[np.ndarray, float, float]:
    """Affine per-tensor quantization as tfjs-converter does it: (q, scale, min)."""
    qd = {"uint8": np.uint8, "uint16": np.uint16}[dtype]
    lo, hi = float(w.min()), float(w.max())
    levels = np.iinfo(qd).max
    scale = (hi - lo) / levels if hi > lo else 1.0
    q = np.round((w - lo) / scale).clip(0, levels).astype(qd)
    return q, scale, lo


def tfjs_dequantize_reference(w: np.ndarray, dtype: str | None) -> np.ndarray:
    """What a correct reader must get back for ``w`` stored with ``dtype`` quantization."""
    if dtype is None:
        return w
    q, scale, lo = tfjs_quantize(w, dtype)
    return (q.astype(np.float64) * scale + lo).astype(np.float32)


def read_frozen_graph():
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(FROZEN.read_bytes())
    return gd


def graph_weights(gd) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in gd.node if n.op == "Const"}


def google_style_graph(gd, fuse: bool = False):
    """The frozen graph renamed as Google's tfjs PoseNet: input sub_2, heads MobilenetV1/<head>/BiasAdd, logits, no Identity reads."""
    import tensorflow as tf

    rename = {"image": "sub_2"}
    for h in HEADS:
        rename[h] = f"MobilenetV1/{h}/BiasAdd"
    ident = {n.name: n.input[0] for n in gd.node if n.op == "Identity"}
    out = tf.compat.v1.GraphDef()
    for n in gd.node:
        if n.op in ("Identity", "Sigmoid"):
            continue
        m = out.node.add()
        m.CopyFrom(n)
        m.name = rename.get(n.name, n.name)
        del m.input[:]
        for i in n.input:
            i = ident.get(i, i)
            m.input.append(rename.get(i, i))
    return _fuse(out, tf) if fuse else out


def _fuse(gd, tf):
    """Fold Conv2D/DepthwiseConv2dNative + BiasAdd (+ Relu6) into tfjs's fused ops."""
    consumers: dict[str, list] = {}
    for n in gd.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop, out = set(), tf.compat.v1.GraphDef()
    fused_nodes = {}
    for n in gd.node:
        if n.op not in ("Conv2D", "DepthwiseConv2dNative"):
            continue
        (bias,) = consumers[n.name]
        assert bias.op in ("BiasAdd", "Add"), bias.op  # the first layer adds its bias with Add
        act = consumers.get(bias.name, [])
        ops, last = [b"BiasAdd"], bias
        if len(act) == 1 and act[0].op == "Relu6":
            ops.append(b"Relu6")
            last = act[0]
        f = tf.compat.v1.NodeDef()
        f.name = last.name
        f.op = "_FusedConv2D" if n.op == "Conv2D" else "FusedDepthwiseConv2dNative"
        f.input.extend([n.input[0], n.input[1], bias.input[1]])
        for k in ("strides", "padding", "dilations", "data_format", "T"):
            if k in n.attr:
                f.attr[k].CopyFrom(n.attr[k])
        f.attr["fused_ops"].list.s.extend(ops)
        f.attr["num_args"].i = 1
        fused_nodes[n.name] = f
        drop.update({n.name, bias.name, last.name})
    for n in gd.node:
        if n.name in fused_nodes:
            out.node.add().CopyFrom(fused_nodes[n.name])
        elif n.name not in drop:
            out.node.add().CopyFrom(n)
    return out


def write_tfjs_graph_model(folder: Path, quant: str | None = None, fuse: bool = False, gd=None) -> Path:
    """Write model-stride16.json + shards; ``quant`` None (float), "uint8" (quantBytes 1) or "uint16" (quantBytes 2)."""
    import tensorflow as tf
    from google.protobuf import json_format

    gd = google_style_graph(gd if gd is not None else read_frozen_graph(), fuse=fuse)
    folder.mkdir(parents=True, exist_ok=True)
    weights, blobs = [], []
    for n in gd.node:
        if n.op != "Const":
            continue
        arr = tf.make_ndarray(n.attr["value"].tensor)
        entry = {"name": n.name, "shape": list(arr.shape), "dtype": "float32" if arr.dtype == np.float32 else "int32"}
        if quant and arr.dtype == np.float32:
            q, scale, lo = tfjs_quantize(arr, quant)
            entry["quantization"] = {"dtype": quant, "scale": scale, "min": lo, "original_dtype": "float32"}
            blobs.append(q.astype(q.dtype.newbyteorder("<")).tobytes())
        else:
            blobs.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        weights.append(entry)
        # tfjs keeps dtype and shape on the node, the data goes to the shards.
        shape = n.attr["value"].tensor.tensor_shape
        n.attr["value"].tensor.Clear()
        n.attr["value"].tensor.dtype = tf.as_dtype(arr.dtype).as_datatype_enum
        n.attr["value"].tensor.tensor_shape.CopyFrom(shape)
    data = b"".join(blobs)
    nshards = max(1, -(-len(data) // SHARD_BYTES))
    paths = []
    for i in range(nshards):
        name = f"group1-shard{i + 1}of{nshards}.bin"
        (folder / name).write_bytes(data[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
        paths.append(name)
    doc = {
        "format": "graph-model",
        "generatedBy": "1.15.0",
        "convertedBy": "TensorFlow.js Converter v1.3.2 (edgepose test fixture)",
        "modelTopology": json_format.MessageToDict(gd),
        "weightsManifest": [{"paths": paths, "weights": weights}],
    }
    path = folder / "model-stride16.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def dequantized_frozen_graph(quant: str):
    """The frozen graph with every float weight replaced by its tfjs round trip (numpy, independent of the reader)."""
    import tensorflow as tf

    gd = read_frozen_graph()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    for n in out.node:
        if n.op == "Const":
            arr = tf.make_ndarray(n.attr["value"].tensor)
            if arr.dtype == np.float32:
                n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(tfjs_dequantize_reference(arr, quant)))
    return out


def run_graph(gd, x: np.ndarray, input_name: str, outputs: list[str]) -> list[np.ndarray]:
    """Run a GraphDef with TF1 semantics (the reference for every comparison)."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=g) as s:
        return s.run(outputs, {input_name: x})


@functools.cache
def frozen_source():
    from edgepose_convert.sources import load_source

    return load_source(FROZEN)


@functools.cache
def calibration_split() -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    from edgepose_convert.calibration import list_images, split_held_out

    cal, ev = split_held_out(list_images(COCO))
    return tuple(cal), tuple(ev)


@functools.cache
def calibration_images() -> tuple:
    from edgepose_convert.calibration import load_calibration

    return tuple(load_calibration(calibration_split()[0]))


@functools.cache
def converted(precision: str, size: tuple[int, int], out_dir: str, io_type: str = "uint8", edgetpu: bool = False):
    """A conversion of the real 0.50 model, done once per session."""
    from edgepose_convert.api import convert
    from edgepose_convert.tflite import QuantOptions

    cal = list(calibration_images()) if precision == "int8" else None
    tag = f"{precision}_{size[0]}x{size[1]}_{io_type}{'_tpu' if edgetpu else ''}"
    return convert(
        frozen_source(),
        precision,
        size,
        Path(out_dir) / f"{tag}.tflite",
        calibration=cal,
        quant=QuantOptions(io_type=io_type),
        edgetpu=edgetpu,
        progress=False,
    )


def tiny_resnet_graph(seed: int = 0):
    """A small graph named like Google's tfjs ResNet50 PoseNet (stride 32, input 0..255 + ImageNet mean).

    Input ``sub_2``; outputs ``float_heatmaps``, ``float_short_offsets``,
    ``resnet_v1_50/displacement_fwd_2/BiasAdd``, ``resnet_v1_50/displacement_bwd_2/BiasAdd``;
    a residual Add and a MaxPool as in ResNet.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name="sub_2")
        w0 = tf.constant(
            rng.normal(scale=0.01, size=(7, 7, 3, 8)).astype(np.float32), name="resnet_v1_50/conv1/weights"
        )
        y = tf.nn.relu(tf.nn.conv2d(x, w0, 4, "SAME"), name="resnet_v1_50/conv1/Relu")
        y = tf.nn.max_pool2d(y, 3, 2, "SAME", name="resnet_v1_50/pool1/MaxPool")
        w1 = tf.constant(
            rng.normal(scale=0.2, size=(3, 3, 8, 8)).astype(np.float32), name="resnet_v1_50/block1/weights"
        )
        y = tf.nn.relu(tf.add(y, tf.nn.conv2d(y, w1, 1, "SAME")), name="resnet_v1_50/block1/Relu")
        w2 = tf.constant(
            rng.normal(scale=0.2, size=(3, 3, 8, 16)).astype(np.float32), name="resnet_v1_50/block2/weights"
        )
        y = tf.nn.relu(tf.nn.conv2d(y, w2, 4, "SAME"), name="resnet_v1_50/block2/Relu")
        for name, c in (
            ("float_heatmaps", 17),
            ("float_short_offsets", 34),
            ("resnet_v1_50/displacement_fwd_2/BiasAdd", 32),
            ("resnet_v1_50/displacement_bwd_2/BiasAdd", 32),
        ):
            w = tf.constant(
                rng.normal(size=(1, 1, 16, c)).astype(np.float32), name=name.replace("/BiasAdd", "") + "/weights"
            )
            b = tf.constant(rng.normal(size=(c,)).astype(np.float32), name=name.replace("/BiasAdd", "") + "/biases")
            tf.nn.bias_add(tf.nn.conv2d(y, w, 1, "SAME"), b, name=name)
    return g.as_graph_def()
