"""``edgepose run`` end to end on real models, images and video, and its one-line errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.cli import main
from edgepose.model import flatbuf
from edgepose.types import KEYPOINT_NAMES
from tests.procs import edgepose

from .conftest import SHARED, coral_model

VIDEO = SHARED / "video" / "openpose_video.avi"
COUPLE = SHARED / "images" / "test_couple.jpg"


def test_image_to_jsonl_finds_both_people(tmp_path):
    out = tmp_path / "couple.jsonl"
    assert (
        main(["run", "--model", str(coral_model("481_641")), "--source", str(COUPLE), "--jsonl", str(out), "-q"]) == 0
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 1
    rec = records[0]
    assert rec["v"] == 1 and rec["frame"] == 0 and (rec["width"], rec["height"]) == (1920, 1278)
    assert len(rec["people"]) == 2
    for person in rec["people"]:
        assert list(person["keypoints"]) == list(KEYPOINT_NAMES)
        assert person["score"] > 0.5
        xs = [kp[0] for kp in person["keypoints"].values()]
        assert 0 <= min(xs) and max(xs) <= 1920  # source-image pixels, not model pixels


def test_video_demo_writes_annotated_video_and_jsonl(tmp_path):
    """The seed article's demo: read the clip, decode up to 10 poses, draw, write a video."""
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    rc = main(
        ["run", "--source", str(VIDEO), "--output", str(video), "--jsonl", str(jsonl), "--max-frames", "24", "-q"]
    )
    assert rc == 0
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 24
    people = [len(json.loads(line)["people"]) for line in lines]
    assert np.mean(people) >= 2 and max(people) <= 10
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert ok and n == 24 and frame.shape[:2] == (720, 1280)
    # Skeletons were drawn: the annotated frame differs from the source frame.
    src = cv2.VideoCapture(str(VIDEO))
    _, raw = src.read()
    src.release()
    assert np.abs(frame.astype(int) - raw.astype(int)).mean() > 0.5


def test_tracking_ids_in_jsonl(tmp_path):
    jsonl = tmp_path / "ids.jsonl"
    assert main(["run", "--source", str(VIDEO), "--jsonl", str(jsonl), "--max-frames", "10", "-q"]) == 0
    ids = {p.get("id") for line in jsonl.read_text().splitlines() for p in json.loads(line)["people"]}
    ids.discard(None)
    assert ids, "tracked people carry an id"


@pytest.mark.integration
@pytest.mark.parametrize(
    "args, expect",
    [
        (["--source", "no/such/video.mp4"], "no/such/video.mp4"),
        (["--source", str(COUPLE), "--model", "no_such_model_name"], "edgepose models list"),
        (["--source", "7"], "camera"),
    ],
)
def test_bad_input_is_one_line_error(args, expect):
    r = edgepose("run", *args, "-q")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("edgepose run: error:")]
    assert len(err) == 1 and expect in err[0], r.stderr


@pytest.mark.integration
def test_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_text("this is not a flatbuffer")
    r = edgepose("run", "--model", str(bad), "--source", str(COUPLE), "-q")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not a TFLite model" in r.stderr and "Fix:" in r.stderr


@pytest.mark.integration
def test_model_without_posenet_outputs(tmp_path):
    """A valid TFLite model whose outputs are not PoseNet's heads is refused by name."""
    buf = coral_model("353_481").read_bytes()
    m = flatbuf.load_model_t(buf)
    sg = m.subgraphs[0]
    sg.outputs = [sg.operators[3].outputs[0]]  # an early feature map
    other = tmp_path / "features.tflite"
    other.write_bytes(flatbuf.pack_model_t(m))
    r = edgepose("run", "--model", str(other), "--source", str(COUPLE), "-q")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "does not have PoseNet's outputs" in r.stderr


@pytest.mark.integration
def test_edgetpu_model_without_runtime_names_what_to_install():
    r = edgepose("run", "--model", str(coral_model("481_641", "quant_decoder_edgetpu")), "--source", str(COUPLE), "-q")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "libedgetpu" in r.stderr and "Edge TPU" in r.stderr
