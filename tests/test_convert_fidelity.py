"""The converter's fidelity figure is the one ``edgepose run`` gives.

``edgepose convert --report`` converts model-mobilenet_v1_050.pb to float32 and the default
int8 at 353x481 (calibrated on the even half of the COCO images), then evaluates the
full-size held-out images (the odd half + test_couple.jpg) through the runtime's own
pre-processing. Running ``edgepose run`` with default flags on the same images with both
models must give the same share of float32's confident keypoints within 5 model-input px,
and that share must reach the target of 97 %.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgepose.cli import main
from edgepose.types import KEYPOINT_NAMES, Pose
from edgepose_convert.calibration import list_images, split_held_out
from edgepose_convert.report import keypoint_errors, summarize_errors

from .conftest_convert import COCO, COUPLE, FROZEN

SIZE = (353, 481)
TARGET = 0.97


def _link_all(paths, folder: Path) -> Path:
    folder.mkdir()
    for p in paths:
        os.symlink(Path(p).resolve(), folder / Path(p).name)
    return folder


def _poses_in_input_pixels(jsonl: Path) -> list[list[Pose]]:
    """Per image, the CLI's poses (source pixels) rescaled to model-input pixels."""
    out = []
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        sx, sy = SIZE[1] / rec["width"], SIZE[0] / rec["height"]
        poses = []
        for person in rec["people"]:
            arr = np.array([person["keypoints"][k] for k in KEYPOINT_NAMES], np.float32)
            poses.append(Pose(arr[:, :2] * np.array([sx, sy], np.float32), arr[:, 2], person["score"]))
        out.append(poses)
    return out


@pytest.mark.tf
@pytest.mark.slow
def test_report_figure_is_what_edgepose_run_gives(tmp_path, capsys):
    cal, held_out = split_held_out(list_images(COCO))
    cal_dir = _link_all(cal, tmp_path / "calibration")
    eval_dir = _link_all([*held_out, COUPLE], tmp_path / "eval")
    models, report = tmp_path / "models", tmp_path / "report.json"
    code = main(
        [
            "convert",
            str(FROZEN),
            "--precision",
            "int8",
            "--input-size",
            "353x481",
            "--calibration",
            str(cal_dir),
            "--eval",
            str(eval_dir),
            "--out-dir",
            str(models),
            "--report",
            str(report),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(report.read_text())
    (int8_row,) = [m for m in doc["models"] if m["label"] == "int8"]
    reported = int8_row["keypoints_vs_float32"]
    # The printed table carries the same figure.
    assert f"{100 * reported['within_5px']:5.1f}%" in out

    cli = {}
    for prec in ("float32", "int8"):
        jsonl = tmp_path / f"{prec}.jsonl"
        model = models / f"posenet_mobilenet_v1_050_353_481_{prec}.tflite"
        assert main(["run", "--model", str(model), "--source", str(eval_dir), "--jsonl", str(jsonl), "-q"]) == 0
        cli[prec] = _poses_in_input_pixels(jsonl)
    assert len(cli["float32"]) == len(held_out) + 1
    errs = np.concatenate([keypoint_errors(a, b) for a, b in zip(cli["float32"], cli["int8"])])
    got = summarize_errors(errs)
    # Equal up to the JSONL's rounding (0.1 px, scores to 3 digits): at most one keypoint apart.
    assert abs(got["confident"] - reported["confident"]) <= 1
    assert abs(got["within_5px"] - reported["within_5px"]) <= 1.0 / reported["confident"] + 1e-9
    assert got["within_5px"] >= TARGET, (
        f"int8 keeps {100 * got['within_5px']:.1f} % of float32's confident keypoints within 5 px"
    )
