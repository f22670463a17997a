"""How well IDs stick: ID switches against ground truth, and against an unambiguous-continuity reference.

Real video has no identity labels here, so :func:`continuity_pairs` builds a
conservative reference from the detections themselves: a pose in frame ``t``
and a pose in frame ``t+1`` are "surely the same person" when each is the
other's nearest neighbour, they are closer than ``max_move`` torso sizes and
every other candidate is at least ``margin`` times further away. A tracker
that gives such a pair two different IDs has made a mistake that needs no
labels to see; pairs in crowds (ambiguous) are left out rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import geometry as g
from ..types import Pose


def _centres_scales(poses: list[Pose], min_score: float) -> tuple[np.ndarray, np.ndarray]:
    if not poses:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    kp = np.stack([p.keypoints for p in poses])
    vis = np.stack([p.visible(min_score) for p in poses])
    return g.body_centre(kp, vis), np.asarray(g.torso_size(kp, vis), np.float32).reshape(-1)


def continuity_pairs(
    frames: list[list[Pose]], max_move: float = 0.5, margin: float = 3.0, min_score: float = 0.3
) -> list[tuple[int, int, int]]:
    """``(t, i, j)``: pose ``i`` of frame ``t`` is unambiguously pose ``j`` of frame ``t+1`` (see module doc)."""
    pairs = []
    for t in range(len(frames) - 1):
        ca, sa = _centres_scales(frames[t], min_score)
        cb, _ = _centres_scales(frames[t + 1], min_score)
        if len(ca) == 0 or len(cb) == 0:
            continue
        d = np.hypot(*np.moveaxis(ca[:, None] - cb[None], -1, 0)) / np.maximum(sa[:, None], 1.0)
        d = np.nan_to_num(d, nan=np.inf)
        for i in range(len(ca)):
            j = int(np.argmin(d[i]))
            if not d[i, j] < max_move or int(np.argmin(d[:, j])) != i:
                continue
            others_row = np.delete(d[i], j)
            others_col = np.delete(d[:, j], i)
            nearest_other = min(others_row.min(initial=np.inf), others_col.min(initial=np.inf))
            if nearest_other >= margin * max(d[i, j], 0.05):
                pairs.append((t, i, j))
    return pairs


def continuity_breaks(frames: list[list[Pose]], pairs: list[tuple[int, int, int]]) -> int:
    """Reference pairs whose two poses did not get the same (non-None) ``track_id``."""
    bad = 0
    for t, i, j in pairs:
        a, b = frames[t][i].track_id, frames[t + 1][j].track_id
        if a is None or b is None or a != b:
            bad += 1
    return bad


@dataclass
class GroundTruthScore:
    id_switches: int  # a person's track ID changed between two of their detections
    ids_per_person: float  # distinct IDs given to one person, mean (1.0 is perfect)
    shared_ids: int  # IDs given to more than one person
    coverage: float  # detections that got an ID


def score_against_truth(truth_ids: list[list[int]], track_ids: list[list[int | None]]) -> GroundTruthScore:
    """Compare per-frame track IDs with the true person IDs of the same detections (negative truth = ghost, skipped)."""
    last: dict[int, int] = {}
    per_person: dict[int, set[int]] = {}
    per_id: dict[int, set[int]] = {}
    switches = n = got = 0
    for gts, tids in zip(truth_ids, track_ids):
        for gt, tid in zip(gts, tids):
            if gt < 0:
                continue  # a ghost detection: no person to keep an ID for
            n += 1
            if tid is None:
                continue
            got += 1
            if gt in last and last[gt] != tid:
                switches += 1
            last[gt] = tid
            per_person.setdefault(gt, set()).add(tid)
            per_id.setdefault(tid, set()).add(gt)
    ids_pp = float(np.mean([len(v) for v in per_person.values()])) if per_person else 0.0
    return GroundTruthScore(switches, ids_pp, sum(1 for v in per_id.values() if len(v) > 1), got / n if n else 0.0)
