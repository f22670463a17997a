"""Shared fixtures: paths to ../shared and real models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The MQTT fixtures (real Mosquitto brokers, real poses) for every test module that asks for them.
pytest_plugins = ["tests.conftest_mqtt", "tests.conftest_web", "tests.conftest_provision"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORAL = SHARED / "models" / "coral"
CORAL_SIZES = ("353_481", "481_641", "721_1281")


def coral_model(size: str, kind: str = "quant") -> Path:
    return CORAL / f"posenet_mobilenet_v1_075_{size}_{kind}.tflite"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests read models, images and video from ../shared beside the repo")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _model_mirror():
    """Registry downloads resolve from ../shared/models, never the internet."""
    os.environ.setdefault("EDGEPOSE_MODEL_MIRROR", str(SHARED / "models"))
    yield
