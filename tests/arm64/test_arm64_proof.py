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

from tests.arm64.prove_arm64 import EDGEPOSE_CLI, SHARED, TOLERANCE_PX, compare, read_poses

SCRIPT = Path(__file__).with_name("prove_arm64.py")


def test_compare_pairs_poses_in_any_order():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1000, (17, 2)), rng.uniform(0, 1000, (17, 2))
    shift = np.zeros((17, 2))
    shift[5] = (3.0, 4.0)  # one keypoint 5 px off
    c = compare([a, b], [b, a + shift])
    assert (c["poses_arm64"], c["poses_x86"], c["keypoints"]) == (2, 2, 34)
    assert c["max_px"] == pytest.approx(5.0)
    assert c["mean_px"] == pytest.approx(5.0 / 34)


def test_compare_fails_on_a_missing_pose_or_no_pose():
    a = np.zeros((17, 2))
    assert compare([a], [a, a])["max_px"] == float("inf")
    assert compare([], [])["keypoints"] == 0


def test_read_poses_reads_edgepose_jsonl(tmp_path):
    """The x86 half of the proof: `edgepose run --jsonl` on the test image, read back."""
    out = tmp_path / "x86.jsonl"
    env = dict(os.environ, EDGEPOSE_MODEL_MIRROR=str(SHARED / "models"), EDGEPOSE_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([*EDGEPOSE_CLI, "run", "--model", "posenet_mobilenet_v1_075_481_641_quant_decoder",
                    "--source", str(SHARED / "images" / "test_couple.jpg"), "--jsonl", str(out), "--quiet"],
                   check=True, env=env)
    poses = read_poses(out)
    assert len(poses) == 2 and all(p.shape == (17, 2) for p in poses)
    assert compare(poses, poses[::-1])["max_px"] == 0.0


@pytest.mark.arm64
def test_bundle_installs_offline_and_matches_x86_on_arm64(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the arm64 proof needs root (chroot, mount, binfmt_misc)")
    for tool in ("debootstrap", "qemu-aarch64-static"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install debootstrap qemu-user-static)")
    summary_file = tmp_path / "summary.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--summary", str(summary_file)],
                         capture_output=True, text=True)
    print(res.stdout)
    assert res.returncode == 0, res.stderr[-4000:]
    s = json.loads(summary_file.read_text())
    assert s["uname -m"] == "aarch64"
    assert s["python"].startswith("3.11.")  # Raspberry Pi OS Bookworm's Python
    assert "ai-edge-litert==" in s["arm64 versions"]
    c = s["comparison"]
    assert c["poses_arm64"] == c["poses_x86"] == 2  # the couple
    assert c["keypoints"] == 34
    assert c["max_px"] <= TOLERANCE_PX
