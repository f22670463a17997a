"""Shared fixtures: paths to ../shared and real models."""

from __future__ import annotations

import os
import shutil
import subprocess
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


@pytest.fixture(scope="session")
def fake_delegate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with tests/fake_delegate/fake_delegate.c built as ``libedgetpu.so.1`` and ``libfake_npu_delegate.so``.

    One library for both accelerators that are not here; the Edge TPU name is found the way the real one is
    (the dynamic loader's search path: put this directory on LD_LIBRARY_PATH).
    """
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler (gcc) is needed to build the fake delegate library (.ci/run installs it)"
    out = tmp_path_factory.mktemp("delegate")
    lib = out / "libfake_npu_delegate.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(REPO / "tests/fake_delegate/fake_delegate.c")], check=True
    )
    (out / "libedgetpu.so.1").symlink_to(lib.name)
    return out
