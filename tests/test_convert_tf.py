"""The converter on the real PoseNet 0.50 model (needs TensorFlow: the [convert] extra).

Conversions are cached for the session (tests/conftest_convert.py). Every converted
model is checked in the edgepose runtime itself (load_posenet, no flags).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgepose.cli import main
from edgepose.model.flatbuf import read_metadata
from edgepose.model.posenet import load_posenet
from edgepose.types import KEYPOINT_NAMES
from edgepose_convert.api import convert
from edgepose_convert.calibration import preprocess
from edgepose_convert.edgetpu import compatibility_report
from edgepose_convert.errors import ConvertError
from edgepose_convert.sources import load_source
from edgepose_convert.tflite import QuantOptions, TFLiteRunner

from .conftest_convert import (
    CHECKPOINT,
    COUPLE,
    FROZEN,
    calibration_images,
    calibration_split,
    converted,
    dequantized_frozen_graph,
    frozen_source,
    graph_weights,
    read_frozen_graph,
    run_graph,
    tfjs_dequantize_reference,
    tiny_resnet_graph,
    write_tfjs_graph_model,
)

pytestmark = pytest.mark.tf

BIG = (353, 481)
SMALL = (257, 257)
ROLES = ("heatmaps", "short_offsets", "displacement_fwd", "displacement_bwd")


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("converted"))


@pytest.fixture(scope="session")
def couple() -> np.ndarray:
    img = cv2.imread(str(COUPLE))
    assert img is not None
    return img


def outputs_by_role(model: Path | bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    buf = model if isinstance(model, bytes) else Path(model).read_bytes()
    names = read_metadata(buf)["outputs"]
    out = TFLiteRunner(buf)(x)
    return {r: out[n] for r, n in names.items()}


def frozen_reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """The frozen graph run by TensorFlow with its own tensor names (heatmap before its sigmoid)."""
    vals = run_graph(
        read_frozen_graph(), x, "image:0", ["heatmap_2:0", "offset_2:0", "displacement_fwd_2:0", "displacement_bwd_2:0"]
    )
    return dict(zip(ROLES, vals))


# --------------------------------------------------------------------------- every precision in the runtime


@pytest.mark.parametrize("precision", ["float32", "float16", "dynamic", "int8"])
def test_each_precision_finds_both_people(precision, out_dir, couple):
    res = converted(precision, BIG, out_dir)
    model = load_posenet(res.path)  # no flags: everything comes from the metadata
    assert model.input_size == BIG and model.output_stride == 16
    assert model.heatmap_activation == "logits"
    poses = model.estimate(couple, min_pose_score=0.25)
    strong = [p for p in poses if p.score >= 0.4]
    assert len(strong) >= 2, [round(p.score, 3) for p in poses]
    centers = sorted(float(np.median(p.keypoints[p.scores > 0.5, 0])) for p in strong[:2])
    assert centers[1] - centers[0] > 200  # two different people, side by side in the 1920-px image
    for p in strong[:2]:
        assert (p.scores > 0.5).sum() >= 10


def test_metadata_written_and_read_back(out_dir):
    for precision in ("float32", "int8"):
        res = converted(precision, BIG, out_dir)
        buf = res.path.read_bytes()
        meta = read_metadata(buf)
        assert meta == res.metadata
        assert meta["format"] == "edgepose" and meta["version"] == 1 and meta["model_type"] == "posenet"
        assert (
            meta["name"] == "posenet_mobilenet_v1_050"
            and meta["architecture"] == "mobilenet_v1"
            and meta["multiplier"] == 0.5
        )
        assert meta["output_stride"] == 16 and meta["precision"] == precision
        assert meta["input"] == {"height": 353, "width": 481, "color": "RGB", "range": [-1.0, 1.0]}
        assert meta["keypoint_names"] == list(KEYPOINT_NAMES)
        assert meta["source"] == "frozen_graph:model-mobilenet_v1_050.pb"
        names = {d["name"] for d in TFLiteRunner(buf).outputs}
        assert set(meta["outputs"]) == set(ROLES) and set(meta["outputs"].values()) == names
    q = read_metadata(converted("int8", BIG, out_dir).path.read_bytes())["quantization"]
    assert q["io_type"] == "uint8" and q["per_channel"] and q["equalized_layers"] == 0
    assert q["rounding"] == "all" and q["rounded_layers"] == {"depthwise": 13, "conv": 18}
    assert q["calibration_images"] == 20


def test_float32_matches_source_graph(out_dir, couple):
    res = converted("float32", BIG, out_dir)
    x = preprocess(couple, BIG)
    ref = frozen_reference(x)
    got = outputs_by_role(res.path, x)
    for r in ROLES:
        assert np.max(np.abs(got[r] - ref[r])) < 5e-3, r
    # The sigmoid was cut: the source's own "heatmap" output is sigmoid(logits).
    (hm,) = run_graph(read_frozen_graph(), x, "image:0", ["heatmap:0"])
    np.testing.assert_allclose(1 / (1 + np.exp(-got["heatmaps"])), hm, atol=1e-4)


def test_quantized_models_are_smaller_and_int8_is_full_integer(out_dir):
    f32 = converted("float32", BIG, out_dir).size_bytes
    assert converted("float16", BIG, out_dir).size_bytes < 0.55 * f32
    assert converted("dynamic", BIG, out_dir).size_bytes < 0.32 * f32
    int8 = converted("int8", BIG, out_dir)
    assert int8.size_bytes < 0.33 * f32
    r = TFLiteRunner(int8.path.read_bytes())
    assert r.input["dtype"] == np.uint8 and all(d["dtype"] == np.uint8 for d in r.outputs)
    assert int8.compat is not None and not int8.compat.cpu_ops  # every op Edge TPU-compatible


def test_int8_io_type_flag(out_dir, couple):
    res = converted("int8", SMALL, out_dir, io_type="int8")
    r = TFLiteRunner(res.path.read_bytes())
    assert r.input["dtype"] == np.int8 and all(d["dtype"] == np.int8 for d in r.outputs)
    model = load_posenet(res.path)
    assert model.input_size == SMALL and model.estimate(couple)


def test_equalization_keeps_the_float_function(couple):
    """The rewrite only moves scale between layers: held-out outputs are those of the source."""
    from edgepose_convert.calibration import augment
    from edgepose_convert.equalize import activation_maxima, channel_scales, equalize, find_chains
    from edgepose_convert.sources import with_graph

    src = frozen_source()
    chains = find_chains(src.graph.graph_def)
    assert len(chains) == 27  # every ReLU6 of MobileNetV1 0.50
    maxima = activation_maxima(
        src.graph.graph_def, src.graph.input_name, chains, [preprocess(i, SMALL) for i in augment(calibration_images())]
    )
    scales = [channel_scales(maxima[c.act], c.cap, 8.0, 2.0) for c in chains]
    assert sum(int((s > 1.01).sum()) for s in scales) > 100  # it does rescale channels
    assert all(s.min() >= 1.0 and s.max() <= 8.0 for s in scales)
    eq = with_graph(src, equalize(src.graph.graph_def, maxima, chains))
    for img in [couple] + [cv2.imread(str(p)) for p in calibration_split()[1][:3]]:
        x = preprocess(img, SMALL)
        a, b = eq.run(x), src.run(x)
        for r in ROLES:
            assert np.max(np.abs(a[r] - b[r])) < 1e-3 * max(1.0, float(np.abs(b[r]).max())), r


def test_output_aware_rounding_reduces_int8_error(tmp_path):
    """Filters on their output-aware int8 levels: smaller errors than nearest rounding on held-out images."""
    src = frozen_source()
    cal = list(calibration_images())
    ev = [cv2.imread(str(p)) for p in calibration_split()[1][:4]]
    errs = {}
    for mode in ("nearest", "depthwise", "all"):
        res = convert(
            src,
            "int8",
            SMALL,
            tmp_path / f"r_{mode}.tflite",
            calibration=cal,
            quant=QuantOptions(rounding=mode),
            progress=False,
        )
        assert (
            res.metadata["quantization"]["rounded_layers"]
            == {
                "nearest": {"depthwise": 0, "conv": 0},
                "depthwise": {"depthwise": 13, "conv": 0},
                "all": {"depthwise": 13, "conv": 18},
            }[mode]
        )
        e = []
        for img in ev:
            x = preprocess(img, SMALL)
            got, ref = outputs_by_role(res.path, x), src.run(x)
            e.append([np.mean(np.abs(got[r] - ref[r])) for r in ROLES])
        errs[mode] = np.mean(e, axis=0)
    assert np.all(errs["depthwise"] < 0.9 * errs["nearest"]), errs
    assert np.all(errs["all"] < 0.8 * errs["depthwise"]), errs


def test_channel_scales_rules():
    from edgepose_convert.equalize import channel_scales

    s = channel_scales(np.array([6.0, 3.0, 0.5, 0.0, 1e-9], np.float32), 6.0, 8.0, 2.0)
    np.testing.assert_allclose(s, [1.0, 1.0, 6.0, 1.0, 1.0])  # 6/(2*0.5) = 6; dead channels untouched
    s = channel_scales(np.array([2.0, 0.1], np.float32), np.inf, 8.0, 1.0)
    np.testing.assert_allclose(s, [1.0, 8.0])  # ReLU: up to the tensor maximum, capped at max_scale


# --------------------------------------------------------------------------- other sources give the same model


def test_checkpoint_gives_the_frozen_graph_outputs(out_dir, couple):
    src = load_source(CHECKPOINT)
    assert (src.architecture, src.multiplier, src.output_stride, src.format) == ("mobilenet_v1", 0.5, 16, "checkpoint")
    res = convert(src, "float32", SMALL, Path(out_dir) / "ckpt.tflite", progress=False)
    x = preprocess(couple, SMALL)
    a, b = outputs_by_role(res.path, x), outputs_by_role(converted("float32", SMALL, out_dir).path, x)
    for r in ROLES:
        np.testing.assert_allclose(a[r], b[r], atol=1e-4)


@pytest.mark.parametrize("fuse", [False, True], ids=["plain-ops", "fused-ops"])
def test_tfjs_float_gives_the_frozen_graph_outputs(fuse, tmp_path, out_dir, couple):
    mj = write_tfjs_graph_model(tmp_path / "tfjs", quant=None, fuse=fuse)
    doc = json.loads(mj.read_text())
    ops = {n["op"] for n in doc["modelTopology"]["node"]}
    assert ("_FusedConv2D" in ops) == fuse and "Identity" not in ops
    src = load_source(mj)
    assert (src.format, src.architecture, src.multiplier, src.output_stride) == ("tfjs", "mobilenet_v1", 0.5, 16)
    assert src.source_heatmap_activation == "logits" and src.output_names["heatmaps"] == "MobilenetV1/heatmap_2/BiasAdd"
    res = convert(src, "float32", SMALL, tmp_path / "tfjs.tflite", progress=False)
    x = preprocess(couple, SMALL)
    a, b = outputs_by_role(res.path, x), outputs_by_role(converted("float32", SMALL, out_dir).path, x)
    for r in ROLES:
        np.testing.assert_allclose(a[r], b[r], atol=2e-3)


@pytest.mark.parametrize("quant", ["uint8", "uint16"], ids=["quantBytes1", "quantBytes2"])
def test_tfjs_quantized_weights(quant, tmp_path, couple):
    from edgepose_convert import tfjs

    mj = write_tfjs_graph_model(tmp_path / "tfjs", quant=quant)
    doc = json.loads(mj.read_text())
    assert all(
        w["quantization"]["dtype"] == quant for w in doc["weightsManifest"][0]["weights"] if w["dtype"] == "float32"
    )
    weights = tfjs.read_weights(mj, doc["weightsManifest"])
    original = graph_weights(read_frozen_graph())
    for name, arr in weights.items():
        np.testing.assert_allclose(arr, tfjs_dequantize_reference(original[name], quant), atol=1e-5, rtol=1e-6)
    res = convert(load_source(mj), "float32", SMALL, tmp_path / "q.tflite", progress=False)
    x = preprocess(couple, SMALL)
    got = outputs_by_role(res.path, x)
    # Same outputs as the frozen graph whose weights went through the same quantization.
    names = ["heatmap_2:0", "offset_2:0", "displacement_fwd_2:0", "displacement_bwd_2:0"]
    ref = dict(zip(ROLES, run_graph(dequantized_frozen_graph(quant), x, "image:0", names)))
    for r in ROLES:
        # TFLite and TF accumulate in different orders: a few of ~10k values differ by up to ~0.02
        # (which ones depends on the input image's pre-processing).
        np.testing.assert_allclose(got[r], ref[r], rtol=1e-3, atol=2.5e-2)
    if quant == "uint16":  # 16-bit weights: close to the float model too
        base = frozen_reference(x)
        d = np.abs(got["short_offsets"] - base["short_offsets"])
        assert d.max() < 1.5 and d.mean() < 0.1, (d.max(), d.mean())


def test_tfjs_resnet_naming_stride_and_input_convention(tmp_path):
    """ResNet50 PoseNet from tfjs: roles from Google's names, stride 32, ImageNet-mean input folded in."""
    from edgepose_convert import tfjs
    from edgepose_convert.sources import RESNET_IMAGENET_MEAN

    gd = tiny_resnet_graph()
    folder = tmp_path / "resnet"
    folder.mkdir()
    mj = _write_plain_tfjs(gd, folder)
    src = load_source(folder)
    assert (src.format, src.architecture, src.output_stride) == ("tfjs", "resnet50", 32)
    assert src.output_names == {
        "heatmaps": "float_heatmaps",
        "short_offsets": "float_short_offsets",
        "displacement_fwd": "resnet_v1_50/displacement_fwd_2/BiasAdd",
        "displacement_bwd": "resnet_v1_50/displacement_bwd_2/BiasAdd",
    }
    with pytest.raises(ConvertError, match="k\\*32\\+1"):
        convert(src, "float32", (241, 241), tmp_path / "bad.tflite")
    res = convert(src, "float32", (225, 321), tmp_path / "r.tflite", progress=False)
    assert res.metadata["architecture"] == "resnet50" and res.metadata["input"]["range"] == [-1.0, 1.0]
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (1, 225, 321, 3)).astype(np.float32)
    x = pixels / 127.5 - 1.0
    names = [
        "float_heatmaps:0",
        "float_short_offsets:0",
        "resnet_v1_50/displacement_fwd_2/BiasAdd:0",
        "resnet_v1_50/displacement_bwd_2/BiasAdd:0",
    ]
    ref = dict(
        zip(
            ROLES,
            run_graph(tfjs.to_graph_def(mj), pixels + np.array(RESNET_IMAGENET_MEAN, np.float32), "sub_2:0", names),
        )
    )
    got = outputs_by_role(res.path, x)
    for r in ROLES:
        np.testing.assert_allclose(got[r], ref[r], rtol=1e-3, atol=1e-3)


def _write_plain_tfjs(gd, folder: Path) -> Path:
    """A float tfjs graph model of ``gd`` (weights in one shard)."""
    import tensorflow as tf
    from google.protobuf import json_format

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    weights, blobs = [], []
    for n in out.node:
        if n.op == "Const":
            arr = tf.make_ndarray(n.attr["value"].tensor)
            if arr.dtype != np.float32:
                continue
            weights.append({"name": n.name, "shape": list(arr.shape), "dtype": "float32"})
            blobs.append(arr.astype("<f4").tobytes())
            shape = n.attr["value"].tensor.tensor_shape
            n.attr["value"].tensor.Clear()
            n.attr["value"].tensor.dtype = tf.float32.as_datatype_enum
            n.attr["value"].tensor.tensor_shape.CopyFrom(shape)
    (folder / "group1-shard1of1.bin").write_bytes(b"".join(blobs))
    doc = {
        "format": "graph-model",
        "modelTopology": json_format.MessageToDict(out),
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": weights}],
    }
    mj = folder / "model-stride32.json"
    mj.write_text(json.dumps(doc))
    return mj


@pytest.mark.integration
def test_saved_model_renamed_and_reordered_outputs(tmp_path, couple):
    """The TF2 route renames outputs (StatefulPartitionedCall:N) and orders them its own way."""
    import tensorflow as tf

    gd = read_frozen_graph()
    names = {
        "float_heatmaps": "heatmap_2:0",
        "displacement_bwd": "displacement_bwd_2:0",
        "float_short_offsets": "offset_2:0",
        "displacement_fwd": "displacement_fwd_2:0",
    }

    def body(x):
        outs = tf.graph_util.import_graph_def(
            gd, input_map={"image:0": x}, return_elements=list(names.values()), name=""
        )
        return dict(zip(names, outs))

    wrapped = tf.compat.v1.wrap_function(body, [tf.TensorSpec([1, None, None, 3], tf.float32)])
    module = tf.Module()
    module.f = wrapped

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="sub_2")])
    def serve(sub_2):
        return module.f(sub_2)

    sm = tmp_path / "saved"
    tf.saved_model.save(module, str(sm), signatures={"serving_default": serve})
    with pytest.raises(ConvertError, match="architecture"):
        load_source(sm)  # no layer names to read it from
    src = load_source(sm, architecture="mobilenet_v1", multiplier=0.5)
    res = convert(src, "float32", SMALL, tmp_path / "sm.tflite", progress=False)
    meta = res.metadata
    assert not set(meta["outputs"].values()) & {"heatmap_2", "offset_2", "displacement_fwd_2", "displacement_bwd_2"}
    x = preprocess(couple, SMALL)
    got, ref = outputs_by_role(res.path, x), frozen_reference(x)
    for r in ROLES:
        np.testing.assert_allclose(got[r], ref[r], atol=5e-3)
    assert load_posenet(res.path).estimate(couple)


def _depthwise_strides(gd) -> dict[int, int]:
    """Stride of each depthwise layer (1..13) as the frozen graph has it."""
    res = {}
    for n in gd.node:
        if n.op == "DepthwiseConv2dNative":
            tail = n.name.rsplit("depthwise", 1)[1]
            res[1 if not tail else int(tail.lstrip("_")) + 1] = int(n.attr["strides"].list.i[1])
    return res


def _keras_posenet(weights: dict[str, np.ndarray], strides: dict[int, int]):
    """MobileNetV1 0.50 PoseNet as a Keras model with the frozen graph's weights."""
    import keras

    x = inp = keras.Input((None, None, 3), name="image")

    def conv(x, name, stride=1):
        w, b = weights[f"MobilenetV1/{name}/weights"], weights[f"MobilenetV1/{name}/biases"]
        layer = keras.layers.Conv2D(w.shape[-1], w.shape[:2], strides=stride, padding="same", name=name.lower())
        y = layer(x)
        layer.set_weights([w, b])
        return y

    x = keras.layers.ReLU(6.0)(conv(x, "Conv2d_0", 2))
    for i in range(1, 14):
        w, b = (
            weights[f"MobilenetV1/Conv2d_{i}_depthwise/depthwise_weights"],
            weights[f"MobilenetV1/Conv2d_{i}_depthwise/biases"],
        )
        dw = keras.layers.DepthwiseConv2D(3, strides=strides[i], padding="same", name=f"conv2d_{i}_depthwise")
        x = dw(x)
        dw.set_weights([w, b])
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.ReLU(6.0)(conv(x, f"Conv2d_{i}_pointwise"))
    outs = [conv(x, h) for h in ("heatmap_2", "offset_2", "displacement_fwd_2", "displacement_bwd_2")]
    return keras.Model(inp, outs, name="mobilenet_v1_posenet")


def test_keras_model_source(tmp_path, couple):
    gd = read_frozen_graph()
    strides = _depthwise_strides(gd)
    assert (
        sorted(strides) == list(range(1, 14)) and sum(s == 2 for s in strides.values()) == 3
    )  # + the stride-2 first conv = 16
    model = _keras_posenet(graph_weights(gd), strides)
    path = tmp_path / "posenet.keras"
    model.save(path)
    src = load_source(path)
    assert (src.format, src.architecture, src.multiplier, src.output_stride) == ("keras", "mobilenet_v1", 0.5, 16)
    res = convert(src, "float32", SMALL, tmp_path / "k.tflite", progress=False)
    x = preprocess(couple, SMALL)
    got, ref = outputs_by_role(res.path, x), frozen_reference(x)
    for r in ROLES:
        np.testing.assert_allclose(got[r], ref[r], rtol=1e-3, atol=5e-3)
    assert read_metadata(res.path.read_bytes())["source"] == "keras:posenet.keras"


# --------------------------------------------------------------------------- Edge TPU


def test_edgetpu_without_compiler_writes_int8_and_says_how(out_dir, monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    res = convert(
        frozen_source(),
        "int8",
        SMALL,
        tmp_path / "tpu.tflite",
        calibration=list(calibration_images()),
        edgetpu=True,
        progress=False,
    )
    assert res.path.exists() and res.compiled is None
    note = " ".join(res.notes)
    assert "edgetpu_compiler is not on PATH" in note and "apt install edgetpu-compiler" in note
    assert res.compat.tpu_ops == len(res.compat.ops) > 30
    with pytest.raises(ConvertError, match="int8"):
        convert(frozen_source(), "float16", SMALL, tmp_path / "x.tflite", edgetpu=True)


FAKE_COMPILER = """#!/bin/sh
# Stand-in for Coral's edgetpu_compiler (not installable here): same command line (-s -o DIR MODEL),
# same output file name and log lines; it copies the model instead of compiling it.
set -e
[ "$1" = "-s" ] && [ "$2" = "-o" ] || exit 2
out="$3"; model="$4"; stem=$(basename "$model" .tflite)
cp "$model" "$out/${stem}_edgetpu.tflite"
echo "Edge TPU Compiler version 16.0.384591198"
echo "Model compiled successfully in 612 ms."
echo "Number of operations that will run on Edge TPU: 36"
echo "Number of operations that will run on CPU: 0"
"""


def test_edgetpu_compiler_on_path_is_run(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "edgetpu_compiler"
    exe.write_text(FAKE_COMPILER)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    res = convert(
        frozen_source(),
        "int8",
        SMALL,
        tmp_path / "m_int8.tflite",
        calibration=list(calibration_images()),
        edgetpu=True,
        progress=False,
    )
    assert res.compiled is not None and res.compiled.path == tmp_path / "m_int8_edgetpu.tflite"
    assert (res.compiled.ops_on_tpu, res.compiled.ops_on_cpu) == (36, 0)
    meta = read_metadata(res.compiled.path.read_bytes())
    assert meta["precision"] == "edgetpu" and meta["outputs"] == res.metadata["outputs"]
    assert read_metadata(res.path.read_bytes())["precision"] == "int8"
    assert any("36 op(s) on the Edge TPU" in n for n in res.notes)


def test_float_model_is_not_edgetpu_compatible(out_dir):
    rep = compatibility_report(converted("float32", SMALL, out_dir).path.read_bytes())
    assert rep.tpu_ops == 0 and all("float32" in o.reason for o in rep.ops)


# --------------------------------------------------------------------------- CLI: bad inputs and the report


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["convert", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_bad_inputs(capsys, tmp_path):
    code, _, err = _cli(capsys, FROZEN, "--input-size", "350x480", "--out", tmp_path / "x.tflite")
    assert code == 2 and "353x481" in err and "k*16+1" in err
    odd = tmp_path / "model.onnx"
    odd.write_bytes(b"\x08\x01")
    code, _, err = _cli(capsys, odd)
    assert code == 2 and "not a model format" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _cli(
        capsys,
        FROZEN,
        "--precision",
        "int8",
        "--input-size",
        "257x257",
        "--calibration",
        empty,
        "--out",
        tmp_path / "y.tflite",
    )
    assert code == 2 and "has no images" in err
    code, _, err = _cli(
        capsys, FROZEN, "--precision", "int8", "--input-size", "257x257", "--out", tmp_path / "y.tflite"
    )
    assert code == 2 and "calibration" in err
    code, _, err = _cli(capsys, FROZEN, "--precision", "int4")
    assert code == 2 and "unknown precision" in err
    # A checkpoint whose data file is damaged.
    ck = tmp_path / "ck"
    ck.mkdir()
    for suf in (".meta", ".index"):
        shutil.copy(str(CHECKPOINT) + suf, ck / ("model.ckpt" + suf))
    data = Path(str(CHECKPOINT) + ".data-00000-of-00001").read_bytes()
    (ck / "model.ckpt.data-00000-of-00001").write_bytes(data[: len(data) // 3])
    code, _, err = _cli(capsys, ck / "model.ckpt", "--out", tmp_path / "z.tflite")
    assert code == 2 and "cannot be restored" in err and "Traceback" not in err
    bad_pb = tmp_path / "bad.pb"
    bad_pb.write_bytes(b"\xff\xff\xff\xff not a graph")
    code, _, err = _cli(capsys, bad_pb)
    assert code == 2 and "GraphDef" in err
    assert not list(tmp_path.glob("*.tflite"))  # nothing half-written


def test_cli_report_and_edgetpu_check(capsys, tmp_path):
    cal, ev = calibration_split()
    report = tmp_path / "report.json"
    code, out, err = _cli(
        capsys,
        FROZEN,
        "--precision",
        "float16,int8",
        "--input-size",
        "257x257",
        "--out-dir",
        tmp_path,
        "--calibration",
        cal[0],
        "--calibration",
        cal[1],
        "--calibration",
        cal[2],
        "--eval",
        ev[0],
        "--eval",
        ev[1],
        "--report",
        report,
    )
    assert code == 0, err
    assert "float32 TFLite vs source" in out and "2 held-out images at 257x257" in out and "report written" in out
    doc = json.loads(report.read_text())
    labels = [m["label"] for m in doc["models"]]
    assert labels == ["float32", "float16", "int8"]
    assert doc["eval_images"] == [ev[0].name, ev[1].name]
    assert max(doc["source_fidelity"]["max_abs_diff"].values()) < 5e-3
    f16 = doc["models"][1]
    assert f16["keypoints_vs_float32"]["within_5px"] > 0.9 and f16["size_vs_float32"] < 0.55
    assert doc["models"][0]["keypoints_vs_float32"] is None
    int8 = tmp_path / "posenet_mobilenet_v1_050_257_257_int8.tflite"
    code, out, _ = _cli(capsys, int8, "--check-edgetpu")
    assert code == 0 and "would run on the Edge TPU" in out
