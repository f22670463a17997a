"""Relocalization PoseNet with TensorFlow: Kendall's loss, a tiny training, export, and the device runtime without TF."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgepose.errors import EdgeposeError, ModelError
from edgepose_convert.relocalization import train as T
from edgepose_convert.relocalization.dataset import load_images, read_dataset, write_synthetic
from edgepose_convert.relocalization.model import build_model, kendall_loss, orientation_loss, position_loss
from tests.conftest import REPO, SHARED

INPUT = 96

pytestmark = pytest.mark.tf


# --------------------------------------------------------------------------- the loss


def test_loss_terms_hand_computed():
    x_true = np.zeros((1, 3), np.float32)
    assert float(position_loss(x_true, np.array([[1.0, 2.0, 2.0]]))[0]) == pytest.approx(3.0, abs=1e-5)
    one = np.array([[1.0, 0, 0, 0]], np.float32)
    # the target quaternion is normalised: q = 2 * identity is still the identity
    assert float(orientation_loss(2 * one, one)[0]) == pytest.approx(0.0, abs=1e-5)
    # the prediction is not (Kendall normalises only at test time)
    assert float(orientation_loss(one, 2 * one)[0]) == pytest.approx(1.0, abs=1e-5)
    # and the loss sees the sign: -q is the same rotation but costs ||-q - q|| = 2
    assert float(orientation_loss(one, -one)[0]) == pytest.approx(2.0, abs=1e-5)
    q = np.array([[0.0, 3.0, 0.0, 4.0]], np.float32)  # normalised: (0, .6, 0, .8)
    assert float(orientation_loss(q, np.array([[0.0, 0.6, 1.0, 0.8]]))[0]) == pytest.approx(1.0, abs=1e-5)


def test_kendall_loss_is_batch_mean_with_beta():
    x_t = np.zeros((2, 3), np.float32)
    x_p = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    q_t = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]], np.float32)
    q_p = np.array([[1.0, 0, 0, 0], [0.0, 1.0, 0, 0]], np.float32)
    # mean position 1.5; mean orientation sqrt(2)/2; beta 10
    assert float(kendall_loss(x_t, x_p, q_t, q_p, beta=10.0)) == pytest.approx(1.5 + 10 * math.sqrt(2) / 2, abs=1e-4)


def test_compiled_keras_loss_is_kendalls():
    import tensorflow as tf

    model = T.compile_model(build_model((32, 32), "small"), beta=7.5)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    y = {
        "position": rng.normal(size=(4, 3)).astype(np.float32),
        "orientation": rng.normal(size=(4, 4)).astype(np.float32),
    }
    got = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)["loss"]
    pred = model(x, training=False)
    want = float(kendall_loss(y["position"], pred["position"], y["orientation"], pred["orientation"], 7.5))
    assert got == pytest.approx(want, rel=1e-4)
    assert isinstance(pred["position"], tf.Tensor)


def test_auto_beta_balances_the_baseline_terms():
    from edgepose.relocalization.geometry import mean_quaternion, normalize_quaternion

    rng = np.random.default_rng(1)
    p = rng.normal(size=(200, 3)) * 3.0
    q = normalize_quaternion(np.c_[np.ones(200) * 3, rng.normal(size=(200, 3))])
    beta = T.auto_beta(p, q)
    dp = np.median(np.linalg.norm(p - p.mean(0), axis=1))
    dq = np.median(np.linalg.norm(q - mean_quaternion(q), axis=1))
    assert beta * dq == pytest.approx(dp, rel=1e-6)
    norm = T.PositionNorm.fit(p)
    assert np.allclose(norm.inverse(norm.forward(p)), p)
    assert np.sqrt(np.mean(np.sum(norm.forward(p) ** 2, axis=1))) == pytest.approx(1.0)


# --------------------------------------------------------------------------- tiny end-to-end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """40 renders of the photo room, a tiny model trained on them, exported float32 and int8."""
    root = tmp_path_factory.mktemp("reloc")
    write_synthetic(root / "data", SHARED / "images", n_train=40, n_test=8, size=(128, 96), progress=False)
    tr = read_dataset(root / "data" / "dataset_train.txt")
    te = read_dataset(root / "data" / "dataset_test.txt")
    size = (INPUT, INPUT)
    xtr, xte = load_images(tr, size, False), load_images(te, size, False)
    settings = T.TrainSettings(input_size=INPUT, epochs=30, batch_size=8, learning_rate=2e-3, augment=False, seed=0)
    trained = T.train(xtr, tr.positions, tr.orientations, settings, progress=False)
    report = T.export_and_evaluate(
        trained, tr, te, xtr, xte, root / "models", ("float32", "int8"), name="tiny", progress=False
    )
    return {"root": root, "train": tr, "test": te, "xtr": xtr, "trained": trained, "report": report}


@pytest.mark.slow
def test_tiny_model_beats_the_mean_pose_on_its_training_renders(tiny):
    tr = tiny["train"]
    fit = tiny["report"]["train_fit"]
    bp, bq = T.MeanPose.fit(tr.positions, tr.orientations).predict(len(tr))
    base = T.pose_errors(bp, bq, tr.positions, tr.orientations)
    assert fit["median_position"] < 0.5 * base["median_position"], (fit, base)
    assert fit["median_orientation_deg"] < 0.5 * base["median_orientation_deg"], (fit, base)


@pytest.mark.slow
def test_export_metadata_and_tflite_matches_keras(tiny):
    from edgepose.model.flatbuf import read_metadata
    from edgepose.relocalization import CameraPoseEstimator

    rep = tiny["report"]
    f32 = Path(rep["exports"]["float32"]["path"])
    meta = read_metadata(f32.read_bytes())
    assert meta["model_type"] == "relocalization" and meta["input"]["height"] == INPUT
    assert meta["scene"] == "synthetic-room-0" and meta["units"] == "m"
    assert set(meta["outputs"]) == {"position", "orientation"}
    assert len(meta["position_normalization"]["mean"]) == 3
    assert rep["exports"]["float32"]["max_abs_diff_vs_keras"]["position"] < 1e-3
    # the device path (full-size BGR image -> crop -> tflite) gives Keras' answer on the same crop
    import cv2

    tr = tiny["train"]
    est = CameraPoseEstimator(f32)
    kp, kq = tiny["trained"].predict(tiny["xtr"][:5])
    for i in range(5):
        cp = est.estimate(cv2.imread(str(tr.images[i])))
        assert np.allclose(cp.position, kp[i], atol=1e-3)
        assert np.allclose(cp.orientation, kq[i], atol=1e-3)
    i8 = CameraPoseEstimator(rep["exports"]["int8"]["path"])
    assert (
        i8.input_dtype == np.uint8
        and read_metadata(Path(rep["exports"]["int8"]["path"]).read_bytes())["precision"] == "int8"
    )
    # every precision was evaluated on the held-out split
    for label in ("mean-pose baseline", "keras (TF)", "tflite float32", "tflite int8"):
        r = rep["results"][label]
        assert r["n"] == 8 and np.isfinite(r["median_position"]) and 0 <= r["median_orientation_deg"] <= 180
    assert rep["results"]["tflite int8"]["invoke_ms"] > 0
    assert "tflite int8" in T.format_table(rep)


DEVICE_SCRIPT = r"""
import json, sys
sys.modules["tensorflow"] = None  # the device has no TensorFlow: importing it must fail
import cv2, numpy as np
import edgepose.relocalization  # registers the model type
from edgepose.model.registry import open_model, model_type_of
import edgepose_convert.relocalization.train, edgepose_convert.relocalization.dataset  # `edgepose reloc eval` runs on the device too
out = []
for path in sys.argv[2:]:
    est = open_model(path, threads=2)
    pose = est.estimate(cv2.imread(sys.argv[1]))
    out.append({"type": model_type_of(path), "cls": type(est).__name__, "dtype": str(est.input_dtype), **pose.to_dict()})
assert "tensorflow" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
print(json.dumps(out))
"""


@pytest.mark.integration
@pytest.mark.slow
def test_device_runtime_without_tensorflow(tiny):
    rep = tiny["report"]
    paths = [rep["exports"][p]["path"] for p in ("float32", "int8")]
    img = str(tiny["test"].images[0])
    r = subprocess.run(
        [sys.executable, "-c", DEVICE_SCRIPT, img, *paths], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    for res in results:
        assert res["type"] == "relocalization" and res["cls"] == "CameraPoseEstimator"
        assert len(res["position"]) == 3 and all(math.isfinite(v) for v in res["position"])
        assert (
            len(res["orientation"]) == 4
            and abs(np.linalg.norm(res["orientation"]) - 1) < 1e-4
            and res["orientation"][0] >= 0
        )
        assert res["model"] == "tiny"
    assert [r["dtype"] for r in results] == ["float32", "uint8"]
    # float32 and int8 agree roughly (int8 loses some accuracy, not the answer)
    assert np.linalg.norm(np.subtract(results[0]["position"], results[1]["position"])) < 1.0


@pytest.mark.slow
def test_payload_validates_against_the_camera_pose_schema(tiny):
    import jsonschema

    from edgepose.relocalization import CameraPoseEstimator

    est = CameraPoseEstimator(tiny["report"]["exports"]["int8"]["path"])
    import cv2

    d = est.estimate(cv2.imread(str(tiny["test"].images[1]))).to_dict()
    schema = json.loads((REPO / "edgepose" / "schemas" / "camera_pose.schema.json").read_text())
    jsonschema.validate({"v": 1, "device": "pi-1", "frame": 3, "ts": 1.5, "camera_pose": d}, schema)


# --------------------------------------------------------------------------- CLI and errors


def _cli(argv: list[str]) -> int:
    from edgepose.cli import reloc

    parser = argparse.ArgumentParser(prog="edgepose")
    sub = parser.add_subparsers(dest="command")
    reloc.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_cli_predict_and_eval(tiny, capsys):
    model = tiny["report"]["exports"]["int8"]["path"]
    img = str(tiny["test"].images[0])
    assert (
        _cli(["reloc", "predict", "--model", model, img, str(tiny["root"] / "nope.jpg")]) == 1
    )  # one unreadable image
    out, err = capsys.readouterr()
    line = json.loads(out.strip().splitlines()[0])
    assert line["image"] == img and len(line["orientation"]) == 4
    assert "nope.jpg" in err
    assert _cli(["reloc", "eval", "--model", model, "--data", str(tiny["root"] / "data"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"]["n"] == 8 and "mean-pose baseline" in res


def test_posenet_model_is_refused_with_a_fix():
    from edgepose.relocalization import CameraPoseEstimator

    with pytest.raises(ModelError, match="not a camera relocalization model") as e:
        CameraPoseEstimator(SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite")
    assert "Fix:" in str(e.value)
    with pytest.raises(ModelError, match="does not exist"):
        CameraPoseEstimator(SHARED / "nope.tflite")


def test_cli_rejects_bad_options(tmp_path):
    with pytest.raises(EdgeposeError, match="precision"):
        _cli(["reloc", "train", "--data", str(tmp_path), "--precisions", "int4"])
    with pytest.raises(EdgeposeError, match="dataset_train.txt"):
        _cli(["reloc", "train", "--data", str(tmp_path), "--epochs", "1"])


@pytest.mark.slow
def test_pipeline_publishes_camera_pose_every_n_frames(tiny):
    """The device pipeline (keypoint model + relocalization model from the config) puts camera_pose in FrameResult.extra."""
    import cv2

    from edgepose.config import load_config
    from edgepose.pipeline import Pipeline
    from edgepose.relocalization import CameraPoseEstimator
    from edgepose.types import Frame

    reloc = tiny["report"]["exports"]["int8"]["path"]
    cfg = load_config(
        overrides={
            "model": {"path": str(SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite")},
            "relocalization": {"enabled": True, "model": reloc, "every_n_frames": 2},
        }
    )
    pipe = Pipeline(cfg)
    images = [cv2.imread(str(p)) for p in tiny["test"].images[:5]]
    results = [pipe.process(Frame(i, i / 10, img)) for i, img in enumerate(images)]
    assert ["camera_pose" in r.extra for r in results] == [True, False, True, False, True]
    direct = CameraPoseEstimator(reloc)
    for i in (0, 2, 4):
        assert results[i].extra["camera_pose"] == direct.estimate(images[i]).to_dict()
    import jsonschema

    schema = json.loads((REPO / "edgepose" / "schemas" / "frame.schema.json").read_text())
    for r in results:
        jsonschema.validate(r.to_dict(), schema)


@pytest.mark.parametrize("arch", ["small", "mobilenetv2"])
def test_architectures_have_the_two_heads(arch):
    model = build_model((64, 64), arch)
    out = model(np.zeros((2, 64, 64, 3), np.float32), training=False)
    assert out["position"].shape == (2, 3) and out["orientation"].shape == (2, 4)
    # the orientation head starts at the identity rotation, not at a zero (unnormalisable) quaternion
    assert np.allclose(model.get_layer("orientation").bias.numpy(), [1, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model((64, 64), "resnet")
