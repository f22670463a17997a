"""Multi-person PoseNet decoding, vectorised, conformant with Coral's ``PosenetDecoderOp``.

The algorithm is PoseNet's (Papandreou et al. 2018, as Coral implements it):

1. root candidates: heatmap local maxima (3x3) above the score threshold,
   refined by their short offset, visited best first;
2. a candidate within ``nms_radius`` of the same part of an accepted pose is
   skipped; otherwise the pose is grown from it along the 16-edge part tree:
   follow the mid-range displacement of the edge, then refine with the child's
   short offset (5 steps), scoring each part by its bilinearly sampled logit;
3. a pose is kept when the mean of its 17 keypoint scores reaches the
   threshold; finally soft keypoint NMS re-scores each pose without the parts
   that a higher-scoring pose already claims.

Speed comes from two facts. The part graph is a tree, so once the root is
known every part's parent is fixed, whatever order the parts are visited in:
all parts at the same depth from the root are grown together, for every
candidate at once (at most 8 levels instead of 16 sequential edges per pose).
And decoding a candidate never depends on another candidate except through
the NMS test, so candidates are decoded in batches and the (cheap, exact)
sequential accept/skip pass runs afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import map_coordinates

from ..types import NUM_KEYPOINTS, POSE_EDGES
from .heads import Heads

NUM_EDGES = len(POSE_EDGES)
REFINE_STEPS = 5
#: Candidates grown per vectorised batch. The first batch is small: its poses usually
#: suppress most later candidates (their roots are parts of people already found).
FIRST_BATCH = 16
BATCH = 48


@dataclass
class DecodedPoses:
    """Decoder output in model-input pixels, best pose first."""

    keypoints_yx: np.ndarray  # (N, 17, 2)
    keypoint_scores: np.ndarray  # (N, 17)
    pose_scores: np.ndarray  # (N,)

    def __len__(self) -> int:
        return int(self.pose_scores.shape[0])


def _directed_edges(coral_quirk: bool) -> list[tuple[int, int, int, int]]:
    """(parent, child, channel_dy, channel_dx) for all 32 directed edges."""
    out = []
    for e, (a, b) in enumerate(POSE_EDGES):
        out.append((a, b, e, NUM_EDGES + e))  # forward: a -> b
    for e, (a, b) in enumerate(POSE_EDGES):
        cy, cx = 2 * NUM_EDGES + e, 3 * NUM_EDGES + e
        if coral_quirk and e == 0:
            # Coral's op offsets backward edge ids with `edge_id > kNumEdges`, so
            # the first backward edge (left eye -> nose) reads channels 16 and 32.
            cy, cx = NUM_EDGES, 2 * NUM_EDGES
        out.append((b, a, cy, cx))  # backward: b -> a
    return out


@lru_cache(maxsize=4)
def traversal_tables(coral_quirk: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per depth level: ``edges (17, E, 4)`` and ``valid (17, E)`` indexed by root part.

    Level ``L`` lists, for a pose grown from root ``r``, the directed edges whose
    child is ``L`` steps from ``r`` in the part tree.
    """
    directed = _directed_edges(coral_quirk)
    by_parent: dict[int, list[tuple[int, int, int, int]]] = {k: [] for k in range(NUM_KEYPOINTS)}
    for edge in directed:
        by_parent[edge[0]].append(edge)
    levels_per_root: list[list[list[tuple[int, int, int, int]]]] = []
    for root in range(NUM_KEYPOINTS):
        seen = {root}
        frontier = [root]
        levels = []
        while frontier:
            level = []
            for node in frontier:
                for edge in by_parent[node]:
                    if edge[1] not in seen:
                        seen.add(edge[1])
                        level.append(edge)
            if level:
                levels.append(level)
            frontier = [e[1] for e in level]
        assert len(seen) == NUM_KEYPOINTS
        levels_per_root.append(levels)
    depth = max(len(lv) for lv in levels_per_root)
    tables = []
    for d in range(depth):
        width = max(len(lv[d]) if d < len(lv) else 0 for lv in levels_per_root)
        edges = np.zeros((NUM_KEYPOINTS, width, 4), np.intp)
        valid = np.zeros((NUM_KEYPOINTS, width), bool)
        for r, lv in enumerate(levels_per_root):
            if d < len(lv):
                edges[r, : len(lv[d])] = lv[d]
                valid[r, : len(lv[d])] = True
        tables.append((edges, valid))
    return tables


def local_maxima(heatmaps: np.ndarray, threshold_logit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells that reach the threshold and no 3x3 neighbour (same part) exceeds.

    Returns ``(y, x, part, logit)`` arrays sorted by decreasing logit.
    """
    h, w, k = heatmaps.shape
    ys, xs, ks = np.nonzero(heatmaps >= threshold_logit)
    if ys.size == 0:
        e = np.zeros(0, np.intp)
        return e, e, e, np.zeros(0, np.float32)
    scores = heatmaps[ys, xs, ks]
    # Compare only the few cells above threshold with their neighbours.
    padded = np.full((h + 2, w + 2, k), -np.inf, np.float32)
    padded[1:-1, 1:-1] = heatmaps
    dy = np.array([0, 0, 0, 1, 1, 2, 2, 2, 1])
    dx = np.array([0, 1, 2, 0, 2, 0, 1, 2, 1])
    neighbourhood = padded[ys[:, None] + dy, xs[:, None] + dx, ks[:, None]]
    keep = neighbourhood.max(axis=1) <= scores
    ys, xs, ks, scores = ys[keep], xs[keep], ks[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return ys[order], xs[order], ks[order], scores[order]


def _logodds(p: float) -> float:
    return float(-np.log(1.0 / (p + 1e-6) - 1.0))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class _Grower:
    """Grows poses from root candidates over the part tree, vectorised across candidates.

    Bilinear sampling is scipy's ``map_coordinates`` (order 1) on the ``(H, W, C)``
    head with the channel as a third, integer coordinate: one C call per
    sampling step, where numpy needs a dozen small calls.
    """

    def __init__(self, heads: Heads, coral_quirk: bool):
        h, w, _ = heads.heatmaps.shape
        self.lim = np.array([h - 1, w - 1], np.float32)
        self.heat = heads.heatmaps
        self.short = heads.offsets
        self.mid = heads.displacements
        self.inv_stride = np.float32(1.0 / heads.stride)
        self.tables = traversal_tables(coral_quirk)

    @staticmethod
    def _sample(table: np.ndarray, coords: np.ndarray, out: np.ndarray) -> np.ndarray:
        map_coordinates(table, coords, output=out, order=1, mode="nearest", prefilter=False)
        return out

    def _step(self, table: np.ndarray, p: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """Points ``p`` (M, 2) moved by the offsets sampled at them, clamped to the grid."""
        coords[0] = p[:, :1]
        coords[1] = p[:, 1:]
        out = self._sample(table, coords, np.empty(p.shape, np.float32))
        out *= self.inv_stride
        out += p
        np.maximum(out, 0.0, out=out)
        return np.minimum(out, self.lim, out=out)  # np.clip's wrapper costs more than both

    def grow(self, roots: np.ndarray, root_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return keypoints ``(N, 17, 2)`` in grid units and logits ``(N, 17)``."""
        n = roots.shape[0]
        pos = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
        pos[np.arange(n), root_ids] = roots
        for edges_t, valid_t in self.tables:
            cand, slot = np.nonzero(valid_t[root_ids])
            if cand.size == 0:
                break
            edges = edges_t[root_ids[cand], slot]  # (M, 4): parent, child, ch_dy, ch_dx
            child = edges[:, 1]
            # coords[:, i, j]: (y, x, channel) of point i for its dy (j=0) and dx (j=1) channel
            coords = np.empty((3, child.size, 2), np.float32)
            coords[2] = edges[:, 2:4]
            p = self._step(self.mid, pos[cand, edges[:, 0]], coords)
            coords[2, :, 0] = child
            coords[2, :, 1] = child + NUM_KEYPOINTS
            for _ in range(REFINE_STEPS):
                p = self._step(self.short, p, coords)
            pos[cand, child] = p
        # Every part's score is the heatmap logit sampled at its final position.
        coords = np.empty((3, n, NUM_KEYPOINTS), np.float32)
        coords[0] = pos[:, :, 0]
        coords[1] = pos[:, :, 1]
        coords[2] = np.arange(NUM_KEYPOINTS)
        logit = self._sample(self.heat, coords, np.empty((n, NUM_KEYPOINTS), np.float32))
        return pos, logit


def decode_multiple_poses(
    heads: Heads,
    max_poses: int = 10,
    score_threshold: float = 0.25,
    nms_radius: float = 20.0,
    *,
    coral_quirk: bool = True,
) -> DecodedPoses:
    """Decode up to ``max_poses`` people.

    ``score_threshold`` is both the root-part threshold and the minimum pose
    score (as in Coral's op); ``nms_radius`` is in model-input pixels.
    ``coral_quirk`` reproduces Coral's channel choice for the left-eye -> nose
    edge so that results match Coral's decoder exactly (it only matters for
    poses grown from an eye or ear).
    """
    stride = heads.stride
    r2 = (nms_radius / stride) ** 2
    ys, xs, ks, _ = local_maxima(heads.heatmaps, _logodds(score_threshold))
    empty = DecodedPoses(
        np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32), np.zeros(0, np.float32)
    )
    if ys.size == 0:
        return empty
    h, w, k = heads.heatmaps.shape
    cell_off = heads.offsets[ys, xs]  # (n, 34)
    idx = np.arange(ys.size)
    roots = np.stack([ys + cell_off[idx, ks] / stride, xs + cell_off[idx, ks + k] / stride], axis=1).astype(np.float32)
    roots = np.minimum(np.maximum(roots, 0.0), np.array([h - 1, w - 1], np.float32))
    grower = _Grower(heads, coral_quirk)

    acc_pos: list[np.ndarray] = []
    acc_kp: list[np.ndarray] = []
    acc_score: list[float] = []
    remaining = idx
    while len(acc_pos) < max_poses and remaining.size:
        if acc_pos:
            prior = np.stack(acc_pos)  # (P, 17, 2)
            d = prior[:, ks[remaining], :] - roots[remaining][None]
            remaining = remaining[((d * d).sum(-1) > r2).all(axis=0)]
            if not remaining.size:
                break
        batch_n = BATCH if acc_pos or remaining.size < idx.size else min(FIRST_BATCH, 4 + 2 * max_poses)
        batch, remaining = remaining[:batch_n], remaining[batch_n:]
        pos, logit = grower.grow(roots[batch], ks[batch])
        kp = _sigmoid(logit)
        inst = kp.mean(axis=1)
        b_roots, b_parts = roots[batch], ks[batch]
        # Candidates of this batch suppressed by poses accepted earlier in this batch
        # (earlier batches were filtered above): updated once per accepted pose.
        suppressed = np.zeros(batch.size, bool)
        for i in range(batch.size):
            if suppressed[i] or inst[i] < score_threshold:
                continue
            acc_pos.append(pos[i])
            acc_kp.append(kp[i])
            acc_score.append(float(inst[i]))
            if len(acc_pos) >= max_poses:
                break
            d = pos[i][b_parts] - b_roots
            suppressed |= (d * d).sum(axis=1) <= r2
    if not acc_pos:
        return empty
    pos = np.stack(acc_pos)
    kp = np.stack(acc_kp).astype(np.float32)
    scores = soft_keypoint_nms(pos, kp, np.array(acc_score), r2)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= score_threshold]
    return DecodedPoses((pos[order] * stride).astype(np.float32), kp[order], scores[order].astype(np.float32))


def soft_keypoint_nms(pos: np.ndarray, kp_scores: np.ndarray, pose_scores: np.ndarray, r2: float) -> np.ndarray:
    """Pose scores recomputed without the parts a higher-scoring pose already has within the radius."""
    order = np.argsort(-pose_scores, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    d = pos[:, None] - pos[None, :]  # (P, P, 17, 2)
    close = (d * d).sum(-1) <= r2  # (P, P, 17)
    higher = rank[None, :] < rank[:, None]  # [i, j]: j ranks above i
    occluded = (close & higher[:, :, None]).any(axis=1)  # (P, 17)
    return np.where(occluded, 0.0, kp_scores).sum(axis=1) / NUM_KEYPOINTS
