"""Coral's reference poses for test_couple.jpg (../shared/reference/coral) and the one conformance check against them.

The tests and the benchmarks (runtime_bench, decode_bench) read the CSV with :func:`reference` and count
reproduced keypoints with :func:`matches_reference`: within :data:`TOL_PX` pixels and :data:`TOL_SCORE` score.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from edgepose.types import KEYPOINT_NAMES, Pose
from tests.conftest import SHARED

#: A keypoint is reproduced when it is within this many model-input pixels (x and y) of Coral's...
TOL_PX = 4.0
#: ...and its score within this much of Coral's.
TOL_SCORE = 0.1


def reference_csv(size: str = "481_641") -> Path:
    """Coral's reference CSV for the decoder-op model of input ``size`` (``HEIGHT_WIDTH``)."""
    return SHARED / "reference" / "coral" / f"posenet_mobilenet_v1_075_{size}_quant_decoder_reference.csv"


def reference(path: Path) -> list[Pose]:
    """The poses of one reference CSV, in its order (``pose_id``), in model-input pixels; ``track_id`` is ``pose_id + 1``."""
    rows: dict[int, dict] = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            p = rows.setdefault(int(r["pose_id"]), {"score": float(r["pose_score"]), "kp": {}})
            p["kp"][r["keypoint_label"].lower()] = (
                float(r["keypoint_x"]),
                float(r["keypoint_y"]),
                float(r["keypoint_score"]),
            )
    poses = []
    for pid, p in sorted(rows.items()):
        arr = np.array([p["kp"][n] for n in KEYPOINT_NAMES], np.float32)
        poses.append(Pose(arr[:, :2], arr[:, 2], p["score"], track_id=pid + 1))
    return poses


def matches_reference(
    keypoints_xy: Sequence[np.ndarray], scores: Sequence[np.ndarray], ref: Sequence[Pose], *, in_order: bool = True
) -> int:
    """How many of the reference's keypoints the decoded poses reproduce (out of ``17 * len(ref)``).

    ``keypoints_xy[i]`` is pose i's ``(17, 2)`` x, y and ``scores[i]`` its ``(17,)`` scores. ``in_order``: decoded
    pose i is compared with reference pose i (a decoder must give Coral's order); otherwise each reference pose
    with the decoded pose closest to it (runtimes that may order poses differently).
    """
    ok = 0
    for i, r in enumerate(ref):
        if in_order:
            if i >= len(keypoints_xy):
                break
            j = i
        else:
            if not len(keypoints_xy):
                break
            j = int(np.argmin([np.abs(np.asarray(p) - r.keypoints).mean() for p in keypoints_xy]))
        dxy = np.abs(np.asarray(keypoints_xy[j]) - r.keypoints).max(axis=1)
        ds = np.abs(np.asarray(scores[j]) - r.scores)
        ok += int(((dxy <= TOL_PX) & (ds <= TOL_SCORE)).sum())
    return ok
