"""Converter parts that need no TensorFlow: sizes, tfjs weights, metrics, calibration, Edge TPU report, CLI guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.types import KEYPOINT_NAMES, Pose
from edgepose_convert.calibration import list_images, load_calibration, split_held_out, video_frames
from edgepose_convert.edgetpu import EDGETPU_OPS, INSTALL_HINT, compatibility_report, compile_model, parse_compiler_log
from edgepose_convert.errors import ConvertError
from edgepose_convert.model_types import POSENET, posenet_metadata
from edgepose_convert.report import keypoint_errors, summarize_errors
from edgepose_convert.sizes import check_input_size, nearest_valid_sides, parse_size
from edgepose_convert.sources import detect_format
from edgepose_convert.tfjs import dequantize, read_weights
from edgepose_convert.tflite import map_output_roles
from tests.conftest import CORAL

from .conftest import REPO
from .conftest_convert import COCO, FROZEN, VIDEO, tfjs_quantize

# --------------------------------------------------------------------------- sizes


def test_parse_size_and_errors():
    assert parse_size("353x481") == (353, 481)
    assert parse_size(" 257 X 257 ") == (257, 257)
    with pytest.raises(ConvertError, match="HxW"):
        parse_size("353")


def test_input_size_must_be_k_stride_plus_one():
    assert check_input_size((353, 481), 16) == (353, 481)
    assert nearest_valid_sides(350, 16) == [353, 337]
    with pytest.raises(ConvertError) as e:
        check_input_size((350, 480), 16)
    msg = str(e.value)
    assert "k*16+1" in msg and "353x481" in msg
    with pytest.raises(ConvertError, match="257x"):
        check_input_size((257, 260), 16)


# --------------------------------------------------------------------------- tfjs weights


def test_tfjs_dequantize_affine_and_float16():
    w = np.linspace(-2.0, 3.0, 101, dtype=np.float32)
    for qd, tol in (("uint8", 5.0 / 255 / 2 + 1e-6), ("uint16", 5.0 / 65535 / 2 + 1e-6)):
        q, scale, lo = tfjs_quantize(w, qd)
        back = dequantize(q, {"dtype": qd, "scale": scale, "min": lo})
        assert back.dtype == np.float32 and np.max(np.abs(back - w)) <= tol
    assert dequantize(w.astype(np.float16), {"dtype": "float16"}).dtype == np.float32
    with pytest.raises(ConvertError, match="quantization"):
        dequantize(w, {"dtype": "int4"})


def _manifest(tmp_path: Path, shard_split: int) -> tuple[Path, list, dict]:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)
    b = rng.normal(size=(8,)).astype(np.float32)
    c = np.array([1, 2, 3], np.int32)
    qa, sa, la = tfjs_quantize(a, "uint8")
    blob = qa.tobytes() + b.tobytes() + c.tobytes()
    (tmp_path / "group1-shard1of2.bin").write_bytes(blob[:shard_split])
    (tmp_path / "group1-shard2of2.bin").write_bytes(blob[shard_split:])
    manifest = [
        {
            "paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
            "weights": [
                {
                    "name": "a",
                    "shape": [3, 3, 3, 8],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "scale": sa, "min": la},
                },
                {"name": "b", "shape": [8], "dtype": "float32"},
                {"name": "c", "shape": [3], "dtype": "int32"},
            ],
        }
    ]
    mj = tmp_path / "model.json"
    mj.write_text(json.dumps({"modelTopology": {}, "weightsManifest": manifest}))
    return mj, manifest, {"a": qa.astype(np.float32) * sa + la, "b": b, "c": c}


def test_tfjs_weights_span_shards(tmp_path):
    mj, manifest, expect = _manifest(tmp_path, shard_split=100)  # the split falls inside weight "a"
    got = read_weights(mj, manifest)
    for k, v in expect.items():
        np.testing.assert_allclose(got[k], v, rtol=0, atol=1e-6)
    assert got["c"].dtype == np.int32


def test_tfjs_truncated_or_missing_shard(tmp_path):
    mj, manifest, _ = _manifest(tmp_path, shard_split=100)
    p = tmp_path / "group1-shard2of2.bin"
    p.write_bytes(p.read_bytes()[:-4])
    with pytest.raises(ConvertError, match="truncated"):
        read_weights(mj, manifest)
    p.unlink()
    with pytest.raises(ConvertError, match="shard"):
        read_weights(mj, manifest)


# --------------------------------------------------------------------------- roles, metadata


def test_role_names():
    assert POSENET.role_of("MobilenetV1/heatmap_2") == "heatmaps"
    assert POSENET.role_of("float_heatmaps") == "heatmaps"
    assert POSENET.role_of("offset_2") == "short_offsets"
    assert POSENET.role_of("float_short_offsets") == "short_offsets"
    assert POSENET.role_of("float_mid_offsets") == "mid_offsets"
    assert POSENET.role_of("resnet_v1_50/displacement_fwd_2") == "displacement_fwd"
    assert POSENET.role_of("displacement_bwd_2") == "displacement_bwd"
    assert POSENET.role_of("MobilenetV1/Conv2d_3_pointwise") is None


def test_metadata_contract():
    outs = {"heatmaps": "a", "short_offsets": "b", "displacement_fwd": "c", "displacement_bwd": "d"}
    m = posenet_metadata(
        name="n",
        architecture="mobilenet_v1",
        multiplier=0.5,
        output_stride=16,
        input_size=(353, 481),
        outputs=outs,
        source="frozen_graph:x.pb",
        precision="int8",
    )
    assert m["format"] == "edgepose" and m["version"] == 1 and m["model_type"] == "posenet"
    assert m["input"] == {"height": 353, "width": 481, "color": "RGB", "range": [-1.0, 1.0]}
    assert m["keypoint_names"] == list(KEYPOINT_NAMES) and m["outputs"] == outs
    assert m["heatmap_activation"] == "logits"
    json.dumps(m)
    with pytest.raises(ValueError):
        posenet_metadata(
            name="n",
            architecture="x",
            multiplier=1,
            output_stride=16,
            input_size=(1, 1),
            outputs={"heatmaps": "a"},
            source="s",
            precision="float32",
        )


def test_output_roles_matched_by_values_not_order():
    rng = np.random.default_rng(0)
    ref = {
        "heatmaps": rng.normal(size=(1, 5, 5, 17)),
        "short_offsets": rng.normal(size=(1, 5, 5, 34)) * 10,
        "displacement_fwd": rng.normal(size=(1, 5, 5, 32)) * 20,
        "displacement_bwd": rng.normal(size=(1, 5, 5, 32)) * 20,
    }
    # Renamed and reordered as the TF2 converter does, with quantization-like noise.
    outs = {
        "StatefulPartitionedCall:0": ref["displacement_bwd"] + rng.normal(size=(1, 5, 5, 32)),
        "StatefulPartitionedCall:1": ref["displacement_fwd"] + rng.normal(size=(1, 5, 5, 32)),
        "StatefulPartitionedCall:2": ref["short_offsets"] + 0.5,
        "StatefulPartitionedCall:3": ref["heatmaps"] - 0.1,
    }
    roles = map_output_roles(outs, ref)
    assert roles == {
        "heatmaps": "StatefulPartitionedCall:3",
        "short_offsets": "StatefulPartitionedCall:2",
        "displacement_fwd": "StatefulPartitionedCall:1",
        "displacement_bwd": "StatefulPartitionedCall:0",
    }
    with pytest.raises(ConvertError):
        map_output_roles({"x": np.zeros((1, 5, 5, 3))}, {"heatmaps": np.zeros((1, 5, 5, 17))})


# --------------------------------------------------------------------------- rounding


def test_best_rounding_beats_nearest_under_the_patch_covariance():
    from edgepose_convert.rounding import LEVELS, best_rounding

    rng = np.random.default_rng(7)
    for _ in range(20):
        w = rng.normal(size=9) * rng.uniform(0.1, 50)
        a = rng.normal(size=(9, 9))
        cov = a @ a.T + np.eye(9) * 1e-3  # a patch covariance: correlated inputs
        s = np.abs(w).max() / LEVELS
        q = best_rounding(w, cov)
        assert np.all(np.abs(q) <= LEVELS) and abs(q[np.argmax(np.abs(w))]) == LEVELS  # scale unchanged
        assert np.all(np.abs(q * s - w) < s)  # each weight rounded down or up, never further
        d_best, d_near = q * s - w, np.round(w / s) * s - w
        assert d_best @ cov @ d_best <= d_near @ cov @ d_near + 1e-12
    assert not best_rounding(np.zeros(9), np.eye(9)).any()


def test_descend_rounding_never_worse_than_nearest():
    from edgepose_convert.rounding import LEVELS, descend_rounding

    rng = np.random.default_rng(11)
    w = rng.normal(size=(64, 8)) * rng.uniform(0.01, 2, size=(1, 8))
    a = rng.normal(size=(64, 64))
    cov = a @ a.T / 64 + np.eye(64) * 1e-3
    new = descend_rounding(w, cov)
    s = np.abs(w).max(axis=0) / LEVELS
    q = new / s
    np.testing.assert_allclose(q, np.round(q), atol=1e-6)  # on int8 levels
    assert np.all(np.abs(new - w) < s + 1e-12) and np.all(np.abs(np.round(q)).max(axis=0) == LEVELS)
    near = np.round(w / s) * s
    for c in range(w.shape[1]):
        d_new, d_near = new[:, c] - w[:, c], near[:, c] - w[:, c]
        assert d_new @ cov @ d_new <= d_near @ cov @ d_near + 1e-12


# --------------------------------------------------------------------------- metrics


def _pose(xy, scores=None, score=0.8):
    return Pose(np.asarray(xy, np.float32), np.full(17, 0.9, np.float32) if scores is None else scores, score)


def test_keypoint_errors_match_poses_and_count_misses():
    rng = np.random.default_rng(3)
    a = _pose(rng.uniform(0, 100, (17, 2)))
    b = _pose(rng.uniform(300, 400, (17, 2)), score=0.6)
    shifted_a = _pose(a.keypoints + np.array([3.0, 3.0], np.float32))  # 4.24 px
    # Test poses come in another order: matching is by position, not index.
    errs = keypoint_errors([a, b], [b, shifted_a])
    assert errs.shape == (34,)
    np.testing.assert_allclose(np.sort(errs)[-17:], np.hypot(3, 3), atol=1e-4)
    np.testing.assert_allclose(np.sort(errs)[:17], 0.0, atol=1e-4)
    missing = keypoint_errors([a, b], [shifted_a])
    assert np.isinf(missing).sum() == 17
    s = summarize_errors(missing)
    assert (
        s["confident"] == 34
        and s["within_5px"] == pytest.approx(0.5)
        and s["within_2px"] == 0.0
        and s["unmatched"] == 17
    )
    low = _pose(a.keypoints, scores=np.full(17, 0.3, np.float32))
    assert keypoint_errors([low], []).size == 0  # no confident keypoints: nothing to compare


# --------------------------------------------------------------------------- calibration


def test_held_out_split_is_deterministic_and_disjoint():
    imgs = list_images(COCO)
    assert len(imgs) == 20
    cal, ev = split_held_out(imgs)
    cal2, ev2 = split_held_out(list(reversed(imgs)))
    assert cal == cal2 and ev == ev2 and len(cal) == len(ev) == 10 and not set(cal) & set(ev)


def test_calibration_sources_and_errors(tmp_path):
    cal, ev = split_held_out(list_images(COCO))
    imgs = load_calibration([COCO], exclude=ev)
    assert len(imgs) == 10 and imgs[0].ndim == 3
    frames = video_frames(VIDEO, 7)
    assert len(frames) == 7 and frames[0].shape[2] == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    with pytest.raises(ConvertError, match="no images"):
        load_calibration([empty])
    with pytest.raises(ConvertError, match="does not exist"):
        load_calibration([tmp_path / "missing"])
    with pytest.raises(ConvertError, match="no calibration images"):
        load_calibration([])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ConvertError, match="could not be read as an image"):
        load_calibration([bad])


# --------------------------------------------------------------------------- formats


def test_detect_format(tmp_path):
    assert detect_format(FROZEN) == "frozen_graph"
    assert detect_format(FROZEN.parent / "checkpoints" / "model-mobilenet_v1_050.ckpt") == "checkpoint"
    assert detect_format(FROZEN.parent / "checkpoints") == "checkpoint"
    odd = tmp_path / "model.onnx"
    odd.write_bytes(b"\0")
    with pytest.raises(ConvertError, match="not a model format"):
        detect_format(odd)
    with pytest.raises(ConvertError, match="already a TFLite"):
        detect_format(CORAL / "posenet_mobilenet_v1_075_353_481_quant.tflite")
    with pytest.raises(ConvertError, match="does not exist"):
        detect_format(tmp_path / "nothing.pb")


# --------------------------------------------------------------------------- Edge TPU

COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 612 ms.

Input model: model_int8.tflite
Input size: 710.16KiB
Output model: model_int8_edgetpu.tflite
Output size: 857.55KiB
On-chip memory used for caching model parameters: 784.25KiB
On-chip memory remaining for caching model parameters: 6.81MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 36
Operation log: model_int8_edgetpu.log
Number of operations that will run on Edge TPU: 35
Number of operations that will run on CPU: 1
"""


def test_parse_compiler_log():
    assert parse_compiler_log(COMPILER_LOG) == (35, 1)
    assert parse_compiler_log("garbage") == (None, None)


def test_compiler_not_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConvertError) as e:
        compile_model(tmp_path / "m.tflite")
    assert "not on PATH" in str(e.value) and "apt install edgetpu-compiler" in str(e.value)
    assert "edgetpu-compiler" in INSTALL_HINT


def test_offline_compat_report_on_coral_models():
    quant = compatibility_report((CORAL / "posenet_mobilenet_v1_075_353_481_quant.tflite").read_bytes())
    assert quant.tpu_ops == len(quant.ops) == 32 and not quant.cpu_ops
    dec = compatibility_report((CORAL / "posenet_mobilenet_v1_075_353_481_quant_decoder.tflite").read_bytes())
    assert [o.op for o in dec.cpu_ops] == ["PosenetDecoderOp"]
    assert "not supported" in dec.cpu_ops[0].reason
    summary = dec.summary()
    assert summary["ops_on_cpu"] == 1 and summary["cpu_ops"][0]["op"] == "PosenetDecoderOp"
    assert "32 of 33" in dec.table()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "QUANTIZE"} <= EDGETPU_OPS and "DEQUANTIZE" not in EDGETPU_OPS


# --------------------------------------------------------------------------- CLI without TensorFlow


def _run_py(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.integration
def test_cli_registers_without_importing_tensorflow():
    p = _run_py(
        "import sys, argparse\n"
        "from edgepose.cli import convert\n"
        "ap = argparse.ArgumentParser(); sub = ap.add_subparsers()\n"
        "convert.register(sub)\n"
        "a = ap.parse_args(['convert', 'x.pb', '--precision', 'int8', '--input-size', '353x481'])\n"
        "assert a.precision == 'int8'\n"
        "print('tensorflow' in sys.modules)\n"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"


@pytest.mark.integration
def test_cli_without_tensorflow_says_how_to_install():
    p = _run_py(
        "import sys\n"
        "sys.modules['tensorflow'] = None  # as if it were not installed\n"
        "from edgepose.cli import main\n"
        f"sys.exit(main(['convert', {str(FROZEN)!r}, '--precision', 'float16']))\n"
    )
    assert p.returncode == 2
    assert 'pip install -e ".[convert]"' in p.stderr  # from the checkout: edgepose is not on PyPI
    assert "Traceback" not in p.stderr
