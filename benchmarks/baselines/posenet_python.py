"""Baseline for the decode benchmark: posenet-python's multi-pose decoder.

A faithful port of rwightman/posenet-python's ``decode_multi.py`` and
``decode.py`` (Apache-2.0), the decoder the seed article used, so that the
benchmark can time it in the same process as edgepose's. Not used at run time.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from edgepose.types import POSE_EDGES

LOCAL_MAXIMUM_RADIUS = 1


def _within_nms_radius(pose_coords, squared_nms_radius, point):
    if not pose_coords.shape[0]:
        return False
    return np.any(np.sum((pose_coords - point) ** 2, axis=1) <= squared_nms_radius)


def _instance_score(exist_pose_coords, squared_nms_radius, keypoint_scores, keypoint_coords):
    if exist_pose_coords.shape[0]:
        s = np.sum((exist_pose_coords - keypoint_coords) ** 2, axis=2) > squared_nms_radius
        not_overlapped = np.sum(keypoint_scores[np.all(s, axis=0)])
    else:
        not_overlapped = np.sum(keypoint_scores)
    return not_overlapped / len(keypoint_scores)


def _parts(score_threshold, local_max_radius, scores):
    parts = []
    lmd = 2 * local_max_radius + 1
    for k in range(scores.shape[2]):
        kp = scores[:, :, k].copy()
        kp[kp < score_threshold] = 0.0
        max_vals = ndi.maximum_filter(kp, size=lmd, mode="constant")
        loc = np.logical_and(kp == max_vals, kp > 0)
        for y, x in zip(*loc.nonzero()):
            parts.append((scores[y, x, k], k, np.array((y, x))))
    return parts


def _traverse(edge_id, source, target_id, scores, offsets, stride, displacements):
    h, w = scores.shape[:2]
    src_idx = np.clip(np.round(source / stride), a_min=0, a_max=[h - 1, w - 1]).astype(np.int32)
    displaced = source + displacements[src_idx[0], src_idx[1], edge_id]
    idx = np.clip(np.round(displaced / stride), a_min=0, a_max=[h - 1, w - 1]).astype(np.int32)
    score = scores[idx[0], idx[1], target_id]
    return score, idx * stride + offsets[idx[0], idx[1], target_id]


def _decode_pose(root_score, root_id, root_coord, scores, offsets, stride, fwd, bwd):
    n = scores.shape[2]
    kp_scores = np.zeros(n)
    kp_coords = np.zeros((n, 2))
    kp_scores[root_id] = root_score
    kp_coords[root_id] = root_coord
    for edge in reversed(range(len(POSE_EDGES))):
        target, source = POSE_EDGES[edge]
        if kp_scores[source] > 0.0 and kp_scores[target] == 0.0:
            kp_scores[target], kp_coords[target] = _traverse(
                edge, kp_coords[source], target, scores, offsets, stride, bwd
            )
    for edge in range(len(POSE_EDGES)):
        source, target = POSE_EDGES[edge]
        if kp_scores[source] > 0.0 and kp_scores[target] == 0.0:
            kp_scores[target], kp_coords[target] = _traverse(
                edge, kp_coords[source], target, scores, offsets, stride, fwd
            )
    return kp_scores, kp_coords


def decode_multiple_poses(
    scores,
    offsets,
    displacements_fwd,
    displacements_bwd,
    output_stride,
    max_pose_detections=10,
    score_threshold=0.5,
    nms_radius=20,
    min_pose_score=0.5,
):
    """``scores`` are sigmoid probabilities (H, W, 17); returns (pose_scores, keypoint_scores, keypoint_coords yx)."""
    count = 0
    pose_scores = np.zeros(max_pose_detections)
    pose_kp_scores = np.zeros((max_pose_detections, 17))
    pose_kp_coords = np.zeros((max_pose_detections, 17, 2))
    r2 = nms_radius**2
    parts = sorted(_parts(score_threshold, LOCAL_MAXIMUM_RADIUS, scores), key=lambda x: x[0], reverse=True)
    h, w = scores.shape[:2]
    offsets = offsets.reshape(h, w, 2, -1).swapaxes(2, 3)
    fwd = displacements_fwd.reshape(h, w, 2, -1).swapaxes(2, 3)
    bwd = displacements_bwd.reshape(h, w, 2, -1).swapaxes(2, 3)
    for root_score, root_id, root_coord in parts:
        root_img = root_coord * output_stride + offsets[root_coord[0], root_coord[1], root_id]
        if _within_nms_radius(pose_kp_coords[:count, root_id, :], r2, root_img):
            continue
        kp_scores, kp_coords = _decode_pose(root_score, root_id, root_img, scores, offsets, output_stride, fwd, bwd)
        score = _instance_score(pose_kp_coords[:count], r2, kp_scores, kp_coords)
        if min_pose_score == 0.0 or score >= min_pose_score:
            pose_scores[count] = score
            pose_kp_scores[count] = kp_scores
            pose_kp_coords[count] = kp_coords
            count += 1
        if count >= max_pose_detections:
            break
    return pose_scores[:count], pose_kp_scores[:count], pose_kp_coords[:count]
