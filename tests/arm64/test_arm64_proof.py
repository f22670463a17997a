"""The arm64 proof (tests/arm64/prove_arm64.py) and its keypoint comparison.

The proof itself needs root, qemu-user-static and debootstrap and takes 15+ minutes on a first
run, so it carries the ``arm64`` marker, which the default run deselects. Run it with:

    sudo .venv/bin/python -m pytest -q -m arm64 tests/arm64
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.arm64.prove_arm64 import (
    EDGEPOSE_CLI,
    SHARED,
    SUITES,
    TOLERANCE_PX,
    compare,
    read_poses,
)

SCRIPT = Path(__file__).with_name("prove_arm64.py")


def pose(rng: np.random.Generator, score: float = 0.9) -> np.ndarray:
    return np.column_stack([rng.uniform(0, 1000, (17, 2)), np.full(17, score)])


def test_compare_pairs_poses_in_any_order():
    rng = np.random.default_rng(0)
    a, b = pose(rng), pose(rng)
    moved = a.copy()
    moved[5, :2] += (3.0, 4.0)  # one keypoint 5 px off
    moved[6, 2] = 0.1  # and one part unsure on the other side
    c = compare([a, b], [b, moved])
    assert (c["poses_arm64"], c["poses_x86"], c["keypoints"], c["confident"]) == (2, 2, 34, 33)
    assert c["max_px"] == pytest.approx(5.0)
    assert c["mean_px"] == pytest.approx(5.0 / 34)
    assert c["max_px_confident"] == pytest.approx(5.0)
    assert c["max_score_diff"] == pytest.approx(0.8)


def test_compare_keeps_unsure_parts_out_of_the_confident_maximum():
    rng = np.random.default_rng(1)
    a = pose(rng)
    b = a.copy()
    b[0, :2] += 6.0
    b[0, 2] = 0.05
    c = compare([a], [b])
    assert c["max_px"] == pytest.approx(6.0 * 2**0.5)
    assert c["max_px_confident"] == 0.0


def test_compare_fails_on_a_missing_pose_or_no_pose():
    a = pose(np.random.default_rng(2))
    assert compare([a], [a, a])["max_px"] == float("inf")
    assert compare([], [])["keypoints"] == 0


@pytest.mark.integration
def test_read_poses_reads_edgepose_jsonl(tmp_path):
    """The x86 half of the proof: `edgepose run --jsonl` on the test image, read back."""
    out = tmp_path / "x86.jsonl"
    env = dict(os.environ, EDGEPOSE_MODEL_MIRROR=str(SHARED / "models"), EDGEPOSE_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run(
        [
            *EDGEPOSE_CLI,
            "run",
            "--model",
            "posenet_mobilenet_v1_075_481_641_quant_decoder",
            "--source",
            str(SHARED / "images" / "test_couple.jpg"),
            "--jsonl",
            str(out),
            "--quiet",
        ],
        check=True,
        env=env,
    )
    poses = read_poses(out)
    assert len(poses) == 2 and all(p.shape == (17, 3) for p in poses)
    assert compare(poses, poses[::-1])["max_px"] == 0.0


CONTAINER_TOOLS = ("podman", "buildah", "runc")


@pytest.fixture(scope="module", params=sorted(SUITES))
def proof(request, tmp_path_factory) -> dict:
    """One run of the proof per Raspberry Pi OS base (Bookworm with the container stage when podman,
    buildah and runc are here; Trixie)."""
    if os.geteuid() != 0:
        pytest.skip("the arm64 proof needs root (chroot, mount, binfmt_misc)")
    for tool in ("debootstrap", "qemu-aarch64-static"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install debootstrap qemu-user-static)")
    summary_file = tmp_path_factory.mktemp("arm64") / "summary.json"
    cmd = [sys.executable, str(SCRIPT), "--suite", request.param, "--summary", str(summary_file)]
    if request.param == "bookworm" and all(shutil.which(t) for t in CONTAINER_TOOLS):
        cmd.append("--container")
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(res.stdout)
    assert summary_file.exists(), res.stderr[-4000:]
    return json.loads(summary_file.read_text())


@pytest.mark.arm64
@pytest.mark.integration
def test_bundle_installs_offline_and_matches_x86_on_arm64(proof):
    assert proof["uname -m"] == "aarch64"
    assert proof["python"].startswith(SUITES[proof["suite"]] + ".")  # that Raspberry Pi OS's Python
    assert "ai-edge-litert==" in proof["arm64 versions"]
    assert proof["xnnpack arm64"]  # LiteRT's default CPU path on a Pi, as on x86
    c = proof["comparison"]
    assert c["poses_arm64"] == c["poses_x86"] == 2  # the couple
    assert c["keypoints"] == 34
    assert c["max_px"] <= TOLERANCE_PX
    assert proof["ok"]


@pytest.mark.arm64
@pytest.mark.integration
def test_dockerfile_builds_and_runs_for_arm64(proof):
    if proof["suite"] != "bookworm":
        pytest.skip(
            "the container stage runs with the Bookworm proof (Dockerfile.arm64's base is python:3.11 on Bookworm)"
        )
    if "container" not in proof:
        pytest.skip(f"needs {', '.join(CONTAINER_TOOLS)} (apt-get install podman buildah runc)")
    o = proof["container"]
    assert o["ok"], f"failed at {o.get('failed')}: {o.get('error')}"
    assert o["uname -m"] == "aarch64"
    c = o["comparison"]
    assert c["poses_arm64"] == c["poses_x86"] == 2
    assert c["max_px"] <= TOLERANCE_PX
