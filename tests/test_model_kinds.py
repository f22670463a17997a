"""One TFLite base under every model kind, one metadata key, kinds found through entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgepose.errors import ModelError
from edgepose.model.base import KeypointModel, TensorSpec, model_type
from edgepose.model.posenet import PoseNetModel
from edgepose.model.registry import open_model
from edgepose.relocalization import CameraPoseEstimator
from tests.conftest import SHARED

CORAL = SHARED / "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite"


def test_int8_tensor_round_trip_stays_within_half_a_step():
    spec = TensorSpec(0, "x", (1, 4), np.dtype(np.int8), 0.05, -3)
    x = np.array([-6.0, -0.01, 0.0, 6.0], np.float32)
    q = spec.quantize(x)
    assert q.dtype == np.int8 and q.tolist() == [-123, -3, -3, 117]
    assert np.all(np.abs(spec.dequantize(q) - x) <= 0.025 + 1e-6)
    assert spec.quantize(np.array([100.0]))[0] == 127  # clipped, not wrapped


def test_metadata_names_the_model_type_in_one_key():
    assert model_type(None) == "posenet"
    assert model_type({"model_type": "relocalization"}) == "relocalization"
    assert (
        model_type({"type": "action_classifier"}) == "action_classifier"
    )  # action files written before the key was unified


@pytest.mark.integration
def test_registry_finds_kinds_through_entry_points_without_importing_them():
    code = (
        "import sys, json\n"
        "from edgepose.model.registry import model_types, open_model\n"
        "kinds = model_types()\n"
        "imported = [m for m in ('edgepose.relocalization', 'edgepose.actions.classifier', 'edgepose.model.posenet') if m in sys.modules]\n"
        f"model = open_model({str(CORAL)!r}, threads=1)\n"
        "print(json.dumps({'kinds': kinds, 'imported': imported, 'cls': type(model).__name__}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out == {"kinds": ["action_classifier", "posenet", "relocalization"], "imported": [], "cls": "PoseNetModel"}


def test_every_kind_shares_the_base_and_refuses_other_kinds():
    posenet = open_model(CORAL, threads=1)
    assert isinstance(posenet, PoseNetModel) and isinstance(posenet, KeypointModel)
    assert posenet.input_spec.quantized and posenet.outputs["heatmaps"].quantized
    with pytest.raises(ModelError, match="not a camera relocalization model"):
        CameraPoseEstimator(CORAL)
    from edgepose.actions.classifier import ActionClassifier

    with pytest.raises(ModelError, match="not an edgepose action classifier"):
        ActionClassifier(CORAL)
