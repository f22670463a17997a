"""Fixtures for the MQTT / service tests: real Mosquitto brokers and real poses.

Registered for every test module by ``pytest_plugins`` in ``tests/conftest.py``;
modules import only its plain helpers and constants (``frame``, ``people``, ``write_recording``, ``check_schema``...).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import jsonschema
import numpy as np
import pytest

from edgepose.mqtt import payloads
from edgepose.types import ActionEvent, FrameResult, Pose
from tests.conftest import SHARED
from tests.mosquitto import Mosquitto, TlsFiles, make_certs, make_password_file

TEST_IMAGE = SHARED / "images" / "test_couple.jpg"
TEST_MODEL = SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite"

BROKER_USER = "device1"
BROKER_PASSWORD = "s3cret-Pa55"


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
        pytest.fail(
            f"{tool} is not installed: the MQTT tests need Debian's mosquitto and openssl packages (.ci/run installs them)"
        )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    _need("mosquitto")
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that saves its state on every change, so a SIGKILL keeps the subscriber's session."""
    _need("mosquitto")
    b = Mosquitto(tmp_path / "pbroker", persistence=True).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    _need("openssl")
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_broker(tmp_path: Path, certs: TlsFiles) -> Iterator[Mosquitto]:
    """TLS with a client certificate required, plus user name / password; no anonymous access."""
    _need("mosquitto_passwd")
    pw = make_password_file(tmp_path / "passwd", {BROKER_USER: BROKER_PASSWORD})
    b = Mosquitto(tmp_path / "tlsbroker", tls=certs, password_file=pw).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def real_poses() -> list[Pose]:
    """The two people of Coral's test image, found by the real quantized model (source-image pixels)."""
    import cv2

    from edgepose.model.posenet import load_posenet

    image = cv2.imread(str(TEST_IMAGE))
    assert image is not None, f"cannot read {TEST_IMAGE}"
    poses = load_posenet(TEST_MODEL, threads=2).estimate(image, max_poses=5, min_pose_score=0.25)
    assert len(poses) >= 2
    for i, p in enumerate(poses):
        p.track_id = i + 1
    return poses


def people(real_poses: list[Pose], n: int) -> list[Pose]:
    """``n`` people: the real ones, then shifted copies (a crowd for payload sizes)."""
    out = []
    for i in range(n):
        base = real_poses[i % len(real_poses)]
        shift = 40.0 * (i // len(real_poses))
        out.append(Pose(base.keypoints + shift, base.scores, base.score, track_id=i + 1))
    return out


def frame(
    index: int, poses: list[Pose], events: list[ActionEvent] | None = None, ts: float | None = None, **extra
) -> FrameResult:
    return FrameResult(
        index=index,
        timestamp=float(index) / 30.0 if ts is None else ts,
        poses=poses,
        width=1920,
        height=1278,
        events=events or [],
        extra=dict(extra),
    )


def write_recording(path: Path, poses: list[Pose], n: int = 200, every: int = 1) -> Path:
    """A JSONL recording (frame records) of ``n`` frames of real poses, with an event on every ``every``-th frame."""
    with path.open("w") as f:
        for i in range(n):
            ev = [ActionEvent(1, "step", "instant", i / 30)] if i % every == 0 else []
            f.write(json.dumps(frame(i, poses, ev).to_dict()) + "\n")
    return path


def check_schema(topic: str, payload: bytes, device: str) -> dict:
    """Decode one MQTT message of ``device`` by its topic's last level and validate it against that kind's JSON schema."""
    kind = topic.rsplit("/", 1)[-1]
    data = payloads.decode_poses(payload, device) if kind == "poses" else json.loads(payload)
    jsonschema.Draft202012Validator(payloads.load_schema(kind)).validate(data)
    return data


def rand_pose(rng: np.random.Generator, track_id: int | None = 1) -> Pose:
    return Pose(rng.uniform(-5, 1900, (17, 2)), rng.uniform(0, 1, 17), float(rng.uniform(0.25, 1)), track_id)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 600 KiB tmpfs (CI runs as root); skipped with the reason when this machine does not allow mounting."""
    import subprocess

    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a 600 KiB tmpfs for the full-disk test (needs root): {r.stderr.strip() or r.returncode}"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
