"""Coral conformance: both of edgepose's decoders (numba, numpy) reproduce Coral's PosenetDecoderOp.

For every Coral model and decoder, decoding test_couple.jpg (resized to the model input with
nearest neighbour, as Coral's test does) must reproduce Coral's reference CSV
within Coral's own tolerance (4 px, 0.1 score).
"""

from __future__ import annotations

import cv2
import pytest

from edgepose.model.posenet import load_posenet

from .conftest import CORAL_SIZES, SHARED, coral_model
from .reference import TOL_PX, TOL_SCORE, matches_reference, reference, reference_csv

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
    ref = reference(reference_csv(size))
    assert len(poses) == 2, f"expected the two people of test_couple.jpg, got {len(poses)}"
    return matches_reference([p.keypoints for p in poses], [p.scores for p in poses], ref), 34


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
