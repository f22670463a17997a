"""Window features for the learned action classifier (numpy only: shared by training and the device).

A window is ``T`` frames of one person, ``keypoints (T, 17, 2)`` pixels and
``visible (T, 17)``. Features are position- and distance-invariant: each
frame is centred on its body centre (neck/hip midpoint) and the whole window
is divided by one scale, the median torso size over the window (one scale per
window keeps the genuine size changes of squats and jumps visible).

Per frame the feature vector is, in this order (``FEATURES_PER_FRAME`` = 72):
34 normalised joint positions (x, y), 34 joint velocities (frame-to-frame
difference of those), 2 body-centre positions relative to the window's last
frame, 2 body-centre velocities. Missing joints are carried forward/backward
within the window, or 0 (the centre) if never seen.

Which joints the detector missed is deliberately *not* a feature: it says
more about the detector and the recording (OpenPose in the training data,
PoseNet on the device) than about the action; in video-grouped evaluation
the flags lowered accuracy.
"""

from __future__ import annotations

import numpy as np

from .. import geometry as g
from ..types import NUM_KEYPOINTS

FEATURE_VERSION = 2
FEATURES_PER_FRAME = 4 * NUM_KEYPOINTS + 4


def _fill_time(a: np.ndarray) -> np.ndarray:
    """Replace nan entries along axis 1 (time) of ``(N, T, ..., 2)`` by the nearest earlier, else later, valid value; 0 if none."""
    n, t = a.shape[:2]
    valid = ~np.isnan(a).any(axis=-1)  # (N, T, ...)
    tix = np.arange(t).reshape((1, t) + (1,) * (valid.ndim - 2))
    last = np.maximum.accumulate(np.where(valid, tix, -1), axis=1)
    # First valid index per series, for the leading gap.
    first = np.where(valid.any(axis=1, keepdims=True), np.argmax(valid, axis=1)[:, None], 0)
    idx = np.where(last < 0, first, last)
    out = np.take_along_axis(a, idx[..., None], axis=1)
    return np.where(np.isnan(out), 0.0, out).astype(a.dtype)


def window_scale(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Median torso size over each window's frames where it is defined: ``(N,)``, ``nan`` if none."""
    return median_scale(np.asarray(g.torso_size(keypoints, visible), np.float32).reshape(len(keypoints), -1))


def median_scale(sizes: np.ndarray) -> np.ndarray:
    """:func:`window_scale` from the frames' torso sizes ``(N, T)`` float32 (nan where unknown)."""
    ok = np.isfinite(sizes)
    srt = np.sort(np.where(ok, sizes, np.inf), axis=1)  # nan-free median (np.nanmedian is slow on small arrays)
    cnt = ok.sum(axis=1)
    lo = np.take_along_axis(srt, np.maximum((cnt - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(srt, np.maximum(cnt // 2, 0)[:, None], axis=1)[:, 0]
    return np.where(cnt > 0, (lo + hi) * 0.5, np.nan).astype(np.float32)


def batch_features(
    keypoints: np.ndarray, visible: np.ndarray, sizes: np.ndarray | None = None, centres: np.ndarray | None = None
) -> np.ndarray:
    """``(N, T, FEATURES_PER_FRAME)`` float32 features of ``(N, T, 17, 2)`` windows (see module doc).

    ``sizes (N, T)`` and ``centres (N, T, 2)``: the frames' :func:`~edgepose.geometry.torso_size` and
    :func:`~edgepose.geometry.body_centre` (float32) when the caller has them already (the device
    measured each frame once for the rules); the same values either way.
    """
    kp = np.asarray(keypoints, np.float32)
    vis = np.asarray(visible, bool)
    n, t = kp.shape[:2]
    if n == 0:
        return np.zeros((0, t, FEATURES_PER_FRAME), np.float32)
    scale = window_scale(kp, vis) if sizes is None else median_scale(np.asarray(sizes, np.float32))  # (N,)
    bad = ~np.isfinite(scale)
    scale = np.where(bad, 1.0, scale)[:, None, None]
    centres = _fill_time(g.body_centre(kp, vis) if centres is None else np.asarray(centres, np.float32))  # (N, T, 2)
    pos = (kp - centres[:, :, None, :]) / scale[..., None]
    pos = np.where(vis[..., None], pos, np.nan)
    pos = _fill_time(pos)  # each joint's gaps along time
    vel = np.zeros_like(pos)
    vel[:, 1:] = pos[:, 1:] - pos[:, :-1]
    c_rel = (centres - centres[:, -1:]) / scale
    c_vel = np.zeros_like(c_rel)
    c_vel[:, 1:] = c_rel[:, 1:] - c_rel[:, :-1]
    feats = np.concatenate([pos.reshape(n, t, -1), vel.reshape(n, t, -1), c_rel, c_vel], axis=2).astype(np.float32)
    feats[bad] = 0.0  # no usable scale: nothing position-invariant to say
    return feats


def window_features(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``(T, FEATURES_PER_FRAME)`` features of one window ``(T, 17, 2)``."""
    return batch_features(np.asarray(keypoints)[None], np.asarray(visible)[None])[0]
