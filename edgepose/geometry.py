"""Pure geometry on keypoint arrays: torso size, normalisation, angles, OKS.

Everything here takes plain numpy arrays in PoseNet / COCO-17 order
(``keypoints`` ``(17, 2)`` pixels, ``visible`` ``(17,)`` bool) so the tracker,
the rule recognisers and the learned classifier share one definition of
"centre", "scale" and "similarity". Functions return ``nan`` rather than
raising when too few joints are visible: callers decide what a gap means.
"""

from __future__ import annotations

import math

import numpy as np

from .types import KEYPOINT_INDEX

L_SHOULDER, R_SHOULDER = KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"]
L_HIP, R_HIP = KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]
L_KNEE, R_KNEE = KEYPOINT_INDEX["left_knee"], KEYPOINT_INDEX["right_knee"]
L_ANKLE, R_ANKLE = KEYPOINT_INDEX["left_ankle"], KEYPOINT_INDEX["right_ankle"]
L_WRIST, R_WRIST = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["right_wrist"]
L_ELBOW, R_ELBOW = KEYPOINT_INDEX["left_elbow"], KEYPOINT_INDEX["right_elbow"]

#: COCO keypoint sigmas (cocoapi ``COCOeval``): how loosely each part is localised.
COCO_SIGMAS = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
        dtype=np.float32,
    )
    / 10.0
)

#: The two pairs whose midpoints are the neck and the hip centre.
_PAIR_A, _PAIR_B = [L_SHOULDER, L_HIP], [R_SHOULDER, R_HIP]

#: Index permutation that mirrors a pose left <-> right (nose stays).
MIRROR_PERM = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])


def midpoint(keypoints: np.ndarray, visible: np.ndarray, a: int, b: int) -> np.ndarray:
    """Midpoint of parts ``a`` and ``b``; one of them if only one is visible; ``nan`` if neither.

    Works on one pose ``(17, 2)`` or any batch ``(..., 17, 2)``.
    """
    kp = np.asarray(keypoints, np.float32)
    va, vb = visible[..., a, None], visible[..., b, None]
    pa, pb = kp[..., a, :], kp[..., b, :]
    both = (pa + pb) * 0.5
    out = np.where(va & vb, both, np.where(va, pa, np.where(vb, pb, np.nan)))
    return out.astype(np.float32)


def neck(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Shoulder midpoint (PoseNet has no neck joint; OpenPose's neck sits there)."""
    return midpoint(keypoints, visible, L_SHOULDER, R_SHOULDER)


def hip_centre(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    return midpoint(keypoints, visible, L_HIP, R_HIP)


def _visible_mean(kp: np.ndarray, visible: np.ndarray) -> np.ndarray:
    cnt = visible.sum(axis=-1)[..., None]
    s = (kp * visible[..., None]).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan).astype(np.float32)


def body_centre(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Midpoint of neck and hips; falls back to either, then to the mean of visible parts (``(..., 2)``)."""
    kp = np.asarray(keypoints, np.float32)
    return _body_centre(kp, visible, neck(kp, visible), hip_centre(kp, visible))


def _body_centre(kp: np.ndarray, visible: np.ndarray, n: np.ndarray, h: np.ndarray) -> np.ndarray:
    ok_n, ok_h = ~np.isnan(n[..., :1]), ~np.isnan(h[..., :1])
    out = np.where(ok_n & ok_h, (n + h) * 0.5, np.where(ok_n, n, np.where(ok_h, h, _visible_mean(kp, visible))))
    return out.astype(np.float32)


def torso_size(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray | float:
    """Neck-to-hip distance in pixels, the body's scale that does not change with arm/leg pose.

    When the torso is hidden or strongly foreshortened (shorter than half the
    fallback), use the fallback: the larger of shoulder width x 1.5 and the
    diagonal of the visible parts / 3.4 (rough adult proportions, equal to the
    torso for a person standing). ``nan`` when fewer than two parts are seen.
    A float for one pose, an array ``(...)`` for a batch ``(..., 17, 2)``.
    """
    kp = np.asarray(keypoints, np.float32)
    vis = np.asarray(visible, bool)
    best = _torso_size(kp, vis, neck(kp, vis), hip_centre(kp, vis))
    return float(best) if best.ndim == 0 else best


def body_measures(keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(neck, hip centre, torso size, body centre)`` of a batch ``(..., 17, 2)``: what :func:`neck`,
    :func:`hip_centre`, :func:`torso_size` and :func:`body_centre` give, by the same operations, with
    the two midpoints computed once instead of three times."""
    kp = np.asarray(keypoints, np.float32)
    vis = np.asarray(visible, bool)
    # midpoint()'s operations on both pairs at once: [neck, hips] side by side.
    va, vb = vis[..., _PAIR_A, None], vis[..., _PAIR_B, None]
    pa, pb = kp[..., _PAIR_A, :], kp[..., _PAIR_B, :]
    m = np.where(va & vb, (pa + pb) * 0.5, np.where(va, pa, np.where(vb, pb, np.nan))).astype(np.float32)
    n, h = m[..., 0, :], m[..., 1, :]
    return n, h, _torso_size(kp, vis, n, h), _body_centre(kp, vis, n, h)


def _torso_size(kp: np.ndarray, vis: np.ndarray, n: np.ndarray, h: np.ndarray) -> np.ndarray:
    d = n - h
    d_torso = np.hypot(d[..., 0], d[..., 1])
    d_torso = np.where(np.isnan(d_torso), 0.0, d_torso)
    sh = vis[..., L_SHOULDER] & vis[..., R_SHOULDER]
    d = kp[..., L_SHOULDER, :] - kp[..., R_SHOULDER, :]
    d_sh = np.where(sh, 1.5 * np.hypot(d[..., 0], d[..., 1]), 0.0)
    big = np.where(vis[..., None], kp, np.inf)
    small = np.where(vis[..., None], kp, -np.inf)
    d = small.max(axis=-2) - big.min(axis=-2)
    with np.errstate(invalid="ignore"):
        ext = np.where(vis.sum(axis=-1) >= 2, np.hypot(d[..., 0], d[..., 1]) / 3.4, 0.0)
    fallback = np.maximum(d_sh, ext)
    best = np.where(d_torso >= 0.5 * fallback, d_torso, fallback)
    return np.where(best > 1e-6, best, np.nan).astype(np.float32)


def normalise(
    keypoints: np.ndarray, visible: np.ndarray, centre: np.ndarray | None = None, scale: float | None = None
) -> np.ndarray:
    """Keypoints centred on the body centre and divided by the torso size; invisible parts are ``nan``."""
    c = body_centre(keypoints, visible) if centre is None else centre
    s = torso_size(keypoints, visible) if scale is None else scale
    out = (keypoints.astype(np.float32) - c) / np.float32(s)
    out[~visible] = np.nan
    return out


def angle_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Angle ``a-b-c`` at ``b`` in degrees (180 = straight); ``nan`` for a degenerate or missing point."""
    v1, v2 = a - b, c - b
    n1, n2 = float(np.hypot(*v1)), float(np.hypot(*v2))
    if not (n1 > 1e-6 and n2 > 1e-6):
        return float("nan")
    cos = float(np.dot(v1, v2)) / (n1 * n2)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def torso_tilt_deg(keypoints: np.ndarray, visible: np.ndarray) -> float:
    """Angle of the hip->neck vector from image-up: 0 upright, 90 horizontal, 180 upside down."""
    n, h = neck(keypoints, visible), hip_centre(keypoints, visible)
    if np.isnan(n[0]) or np.isnan(h[0]):
        return float("nan")
    v = n - h
    norm = float(np.hypot(*v))
    if norm < 1e-6:
        return float("nan")
    # Image y grows downwards, so "up" is (0, -1).
    return math.degrees(math.acos(max(-1.0, min(1.0, float(-v[1]) / norm))))


def bbox_area(keypoints: np.ndarray, visible: np.ndarray) -> float:
    """Area of the box around the visible parts (COCO's OKS uses the object area)."""
    if int(visible.sum()) < 2:
        return 0.0
    pts = keypoints[visible]
    w, h = pts.max(axis=0) - pts.min(axis=0)
    return float(w * h)


def oks(kp_a: np.ndarray, vis_a: np.ndarray, kp_b: np.ndarray, vis_b: np.ndarray, area: float) -> float:
    """Object keypoint similarity of two poses, over the parts visible in both (0..1).

    ``area`` is the reference object's area in pixels^2 (COCO uses the
    segment area; the keypoint box area is the usual stand-in).
    """
    both = vis_a & vis_b
    if not both.any() or area <= 0:
        return 0.0
    d2 = ((kp_a[both] - kp_b[both]) ** 2).sum(axis=1)
    var = (2.0 * COCO_SIGMAS[both]) ** 2
    return float(np.exp(-d2 / (2.0 * area * var)).mean())


def oks_matrix(
    kps_a: np.ndarray,
    vis_a: np.ndarray,
    kps_b: np.ndarray,
    vis_b: np.ndarray,
    areas_a: np.ndarray,
    sigma_scale: float = 1.0,
) -> np.ndarray:
    """OKS between every pose of ``a`` ``(N,17,2)`` and ``b`` ``(M,17,2)``, scaled by ``areas_a``: ``(N, M)``.

    Vectorised form of :func:`oks` for the tracker's cost matrix. ``sigma_scale``
    widens COCO's per-part tolerances (frame-to-frame jitter of a fast model
    on small people is larger than a human annotator's error).
    """
    n, m = len(kps_a), len(kps_b)
    if n == 0 or m == 0:
        return np.zeros((n, m), np.float32)
    d2 = ((kps_a[:, None] - kps_b[None]) ** 2).sum(axis=-1)  # (N, M, 17)
    var = (2.0 * COCO_SIGMAS * sigma_scale) ** 2
    area = np.maximum(np.asarray(areas_a, np.float32), 1.0)[:, None, None]
    e = np.exp(-d2 / (2.0 * area * var))
    both = vis_a[:, None, :] & vis_b[None, :, :]
    cnt = both.sum(axis=-1)
    s = (e * both).sum(axis=-1) / np.maximum(cnt, 1)
    return np.where(cnt > 0, s, 0.0).astype(np.float32)


def mirror(keypoints: np.ndarray, visible: np.ndarray, centre_x: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A left-right mirrored pose about ``x = centre_x`` (parts swap sides, so it is a plausible person)."""
    kp = keypoints[..., MIRROR_PERM, :].copy()
    kp[..., 0] = 2 * centre_x - kp[..., 0]
    return kp, visible[..., MIRROR_PERM].copy()
