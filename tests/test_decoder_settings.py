"""Decoder settings: flag > device config > the model's own > built-in default, through the CLI.

The headline check is Coral's conformance test run as a user runs it: ``edgepose run``
with default flags on each ``*_quant_decoder`` model must reproduce Coral's reference
poses (34 of 34 keypoints within 4 px and 0.1 score). The image is resized to the model
input with nearest neighbour first, as Coral's test does, so the CLI's own resize is a
no-op and its source-pixel output is in the reference's model-input pixels.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.cli import main
from edgepose.decoder_settings import DEFAULTS, resolve_decoder_settings
from edgepose.model import flatbuf
from edgepose.types import KEYPOINT_NAMES

from .conftest import CORAL_SIZES, SHARED, coral_model
from .reference import TOL_PX, TOL_SCORE, matches_reference, reference, reference_csv

COUPLE = SHARED / "images" / "test_couple.jpg"


# --------------------------------------------------------------------------- the pure rule


def test_each_key_comes_from_the_highest_layer_that_sets_it():
    s = resolve_decoder_settings(
        flags={"min_pose_score": 0.4, "max_poses": None},
        config={"nms_radius": 15.0, "min_pose_score": 0.3, "mode": None},
        model={"max_poses": 5, "min_pose_score": 0.2, "nms_radius": 10.0},
        model_source="model: Coral decoder op",
    )
    assert (s.min_pose_score, s.nms_radius, s.max_poses, s.min_part_score, s.mode) == (
        0.4,
        15.0,
        5,
        DEFAULTS["min_part_score"],
        "multi",
    )
    assert s.sources == {
        "min_pose_score": "flag",
        "nms_radius": "device config",
        "max_poses": "model: Coral decoder op",
        "min_part_score": "default",
        "mode": "default",
    }


def test_nothing_set_is_the_built_in_defaults():
    s = resolve_decoder_settings()
    assert s.values() == DEFAULTS and set(s.sources.values()) == {"default"}


# --------------------------------------------------------------------------- through the CLI


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _conformance(people: list[dict], ref: list) -> int:
    """Reference keypoints reproduced; each reference person against the closest output person."""
    poses = [np.array([p["keypoints"][k] for k in KEYPOINT_NAMES], np.float32) for p in people]
    return matches_reference([p[:, :2] for p in poses], [p[:, 2] for p in poses], ref, in_order=False)


@pytest.fixture(scope="module")
def coral_inputs(tmp_path_factory):
    """test_couple.jpg resized to each model's input with nearest neighbour (PNG: lossless)."""
    d = tmp_path_factory.mktemp("coral_inputs")
    image = cv2.imread(str(COUPLE))
    out = {}
    for size in CORAL_SIZES:
        h, w = (int(v) for v in size.split("_"))
        p = d / f"couple_{size}.png"
        # Coral's test resizes with PIL's nearest neighbour, which INTER_NEAREST_EXACT reproduces.
        cv2.imwrite(str(p), cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST_EXACT))
        out[size] = p
    return out


@pytest.mark.parametrize("size", CORAL_SIZES)
def test_run_with_default_flags_reproduces_coral_reference(size, coral_inputs, tmp_path, capsys):
    jsonl = tmp_path / "out.jsonl"
    rc = main(
        [
            "run",
            "--model",
            str(coral_model(size, "quant_decoder")),
            "--source",
            str(coral_inputs[size]),
            "--jsonl",
            str(jsonl),
        ]
    )
    assert rc == 0
    (rec,) = _records(jsonl)
    assert len(rec["people"]) == 2
    ok = _conformance(rec["people"], reference(reference_csv(size)))
    assert ok == 34, f"{ok}/34 keypoints within {TOL_PX} px and {TOL_SCORE} score"
    summary = capsys.readouterr().err
    line = next(ln for ln in summary.splitlines() if ln.startswith("decoder:"))
    assert "max_poses 10 (model: Coral decoder op)" in line
    assert "min_pose_score 0.2 (model: Coral decoder op)" in line
    assert "nms_radius 10 (model: Coral decoder op)" in line
    assert "min_part_score 0.25 (default)" in line


def test_flag_beats_device_config_beats_model(coral_inputs, tmp_path, capsys):
    cfg = tmp_path / "device.toml"
    cfg.write_text("[decode]\nnms_radius = 30.0\nmin_pose_score = 0.5\n")
    jsonl = tmp_path / "out.jsonl"
    model = str(coral_model("353_481", "quant_decoder"))
    rc = main(
        [
            "run",
            "--model",
            model,
            "--source",
            str(coral_inputs["353_481"]),
            "--config",
            str(cfg),
            "--min-pose-score",
            "0.95",
            "--jsonl",
            str(jsonl),
        ]
    )
    assert rc == 0
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("decoder:"))
    assert "min_pose_score 0.95 (flag)" in line
    assert "nms_radius 30 (device config)" in line
    assert "max_poses 10 (model: Coral decoder op)" in line
    # The flag is really applied: no pose of test_couple scores 0.95.
    assert _records(jsonl)[0]["people"] == []


def test_edgepose_metadata_decoder_table_is_the_models_setting(coral_inputs, tmp_path, capsys):
    """A converted model may carry a ``decoder`` table in its metadata; it ranks like Coral's op options."""
    buf = coral_model("353_481").read_bytes()
    tagged = tmp_path / "one_pose.tflite"
    tagged.write_bytes(flatbuf.write_metadata(buf, {"decoder": {"max_poses": 1, "nms_radius": 12.0}}))
    jsonl = tmp_path / "out.jsonl"
    assert main(["run", "--model", str(tagged), "--source", str(coral_inputs["353_481"]), "--jsonl", str(jsonl)]) == 0
    assert len(_records(jsonl)[0]["people"]) == 1
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("decoder:"))
    assert "max_poses 1 (model: edgepose metadata)" in line and "nms_radius 12 (model: edgepose metadata)" in line
    assert "min_pose_score 0.25 (default)" in line


def test_models_info_shows_settings_in_force_and_their_origin(tmp_path, capsys):
    model = str(coral_model("481_641", "quant_decoder"))
    assert main(["models", "info", model, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    s = info["decoder_settings"]
    assert s["max_poses"] == {"value": 10, "source": "model: Coral decoder op"}
    assert s["nms_radius"] == {"value": 10.0, "source": "model: Coral decoder op"}
    assert s["min_pose_score"]["value"] == pytest.approx(0.2) and s["min_part_score"]["source"] == "default"
    cfg = tmp_path / "device.toml"
    cfg.write_text("[decode]\nmax_poses = 3\n")
    assert main(["models", "info", model, "--config", str(cfg)]) == 0
    row = next(
        ln
        for ln in capsys.readouterr().out.splitlines()
        if ln.startswith("decoder ") and not ln.startswith("decoder op")
    )
    assert "max_poses 3 (device config)" in row and "nms_radius 10 (model: Coral decoder op)" in row


def test_bad_flag_value_is_one_line(tmp_path, capsys):
    rc = main(["run", "--source", str(COUPLE), "--max-poses", "0", "-q"])
    err = capsys.readouterr().err
    assert rc != 0 and "max-poses" in err and "Traceback" not in err


def test_serve_path_pipeline_takes_config_then_model():
    """``serve`` builds its Pipeline from the device config alone: config > model > default, no flags."""
    from edgepose.config import EdgeposeConfig
    from edgepose.pipeline import Pipeline

    cfg = EdgeposeConfig.model_validate(
        {"model": {"path": str(coral_model("353_481", "quant_decoder"))}, "decode": {"nms_radius": 15.0}}
    )
    d = Pipeline(cfg).decoder
    assert (d.nms_radius, d.sources["nms_radius"]) == (15.0, "device config")
    assert d.min_pose_score == pytest.approx(0.2) and d.sources["min_pose_score"] == "model: Coral decoder op"
    assert d.sources["min_part_score"] == "default"
