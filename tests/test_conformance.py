"""Coral conformance: both of edgepose's decoders (numba, numpy) reproduce Coral's PosenetDecoderOp.

For every Coral model and decoder, decoding test_couple.jpg (resized to the model input with
nearest neighbour, as Coral's test does) must reproduce Coral's reference CSV
within Coral's own tolerance (4 px, 0.1 score).
"""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from edgepose.model.posenet import load_posenet
from edgepose.types import KEYPOINT_NAMES

from .conftest import CORAL_SIZES, SHARED, coral_model

TOL_PX = 4.0
TOL_SCORE = 0.1


def reference(size: str) -> np.ndarray:
    """(2, 17, 3) array of x, y, score from Coral's CSV."""
    rows = list(csv.DictReader(open(SHARED / "reference" / "coral" / f"posenet_mobilenet_v1_075_{size}_quant_decoder_reference.csv")))
    out = np.zeros((2, 17, 3), np.float32)
    for r in rows:
        k = KEYPOINT_NAMES.index(r["keypoint_label"].lower())
        out[int(r["pose_id"]), k] = float(r["keypoint_x"]), float(r["keypoint_y"]), float(r["keypoint_score"])
    return out


DECODERS = ("numba", "numpy")


def matches(size: str, kind: str, decoder: str) -> tuple[int, int]:
    model = load_posenet(coral_model(size, kind), threads=2, resize_filter="nearest", decoder=decoder)
    assert model.decoder_name == decoder
    image = cv2.imread(str(SHARED / "images" / "test_couple.jpg"))
    # Coral's test resizes with PIL's nearest neighbour, which INTER_NEAREST_EXACT reproduces.
    image = cv2.resize(image, (model.input_width, model.input_height), interpolation=cv2.INTER_NEAREST_EXACT)
    settings = model.decoder_settings() or {"max_poses": 10, "min_pose_score": 0.2, "nms_radius": 10.0}
    if kind == "quant_decoder":
        assert settings == {"max_poses": 10, "min_pose_score": pytest.approx(0.2), "nms_radius": 10.0}
    poses = model.estimate(image, **settings)
    ref = reference(size)
    assert len(poses) == 2, f"expected the two people of test_couple.jpg, got {len(poses)}"
    ok = 0
    for pose, r in zip(poses, ref):
        dxy = np.abs(pose.keypoints - r[:, :2]).max(axis=1)
        ds = np.abs(pose.scores - r[:, 2])
        ok += int(((dxy <= TOL_PX) & (ds <= TOL_SCORE)).sum())
    return ok, 34


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("size", CORAL_SIZES)
def test_decoder_model_matches_coral_reference(size, decoder):
    ok, n = matches(size, "quant_decoder", decoder)
    assert ok == n, f"{ok}/{n} keypoints within {TOL_PX} px and {TOL_SCORE} score"


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("size", CORAL_SIZES)
def test_raw_model_matches_coral_reference(size, decoder):
    # The raw models' short offsets are quantized to about +-10 px, which moves two
    # low-confidence keypoints; everything else must match.
    ok, n = matches(size, "quant", decoder)
    assert ok >= 32, f"only {ok}/{n} keypoints within tolerance"
