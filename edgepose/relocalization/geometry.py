"""Camera-pose geometry in numpy: quaternions, pose errors, the mean pose.

Conventions (those of Cambridge Landmarks' ``dataset_*.txt``, from VisualSFM):

* ``position`` is the camera centre ``c`` in world coordinates;
* ``orientation`` is the unit quaternion ``(w, x, y, z)`` of the rotation ``R``
  from world to camera axes: a world point ``X`` is at ``R @ (X - c)`` in the
  camera frame (OpenCV camera axes: x right, y down, z forward).

``q`` and ``-q`` are the same rotation; edgepose reports the one with ``w >= 0``.
"""

from __future__ import annotations

import numpy as np


def normalize_quaternion(q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Unit quaternion(s) with ``w >= 0`` (``(..., 4)``; for ``w = 0`` the next non-zero component is positive); zero -> identity."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    ident = np.zeros_like(q)
    ident[..., 0] = 1.0
    out = np.where(n > eps, q / np.maximum(n, eps), ident)
    # Canonical sign: the first clearly non-zero component (w, unless w = 0) is positive.
    first = np.argmax(np.abs(out) > 1e-9, axis=-1)[..., None]
    lead = np.take_along_axis(out, first, axis=-1)
    return np.where(lead < 0, -out, out)


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a quaternion ``(w, x, y, z)`` (normalised first)."""
    w, x, y, z = normalize_quaternion(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Quaternion ``(w, x, y, z)``, ``w >= 0``, of a 3x3 rotation matrix (Shepperd's method: stable for any angle)."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    return normalize_quaternion(np.array(q))


def position_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Euclidean distance per sample (``(N, 3)`` each), in the dataset's units."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(true, np.float64), axis=-1)


def orientation_errors_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Rotation angle between quaternions per sample, degrees; sign-invariant (``q`` = ``-q``)."""
    a = normalize_quaternion(pred)
    b = normalize_quaternion(true)
    d = np.abs(np.sum(a * b, axis=-1)).clip(0.0, 1.0)
    return np.degrees(2.0 * np.arccos(d))


def mean_quaternion(qs: np.ndarray) -> np.ndarray:
    """Average rotation of ``(N, 4)`` quaternions: the principal eigenvector of ``sum q q^T`` (Markley et al. 2007).

    Sign-invariant, unlike averaging the components.
    """
    q = normalize_quaternion(qs).reshape(-1, 4)
    m = q.T @ q
    vals, vecs = np.linalg.eigh(m)
    return normalize_quaternion(vecs[:, int(np.argmax(vals))])
