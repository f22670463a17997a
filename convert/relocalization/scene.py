"""A synthetic relocalization scene: a room whose walls, floor and ceiling are real photographs.

No relocalization dataset can be downloaded here, so training data is rendered:
a box room (8 x 3 x 8 m by default) whose six planes are textured with
photographs (COCO images and ``test_couple.jpg`` from ``../shared/images``, or
any folder of images), seen by a pinhole camera at known 6-DoF poses.

Rendering is exact plane-induced homographies: each plane ``X = O + u U + v V``
(``u, v`` in ``[0, 1]``) maps to the image by ``H = K [R U | R V | R (O - c)]``.
For every pixel ``p``, ``H^-1 p = (u, v, 1) / z`` gives the texture coordinate
and the depth ``z`` of the plane along that ray, so a per-pixel depth test
picks the nearest plane in front of the camera (correct for any set of
quads, not only convex rooms) and ``cv2.remap`` samples its photograph.
Rendering at 2x and area-downsampling anti-aliases texture and edges.

World axes follow OpenCV's camera: x right, y down (gravity), z forward; the
camera at yaw = pitch = roll = 0 looks along +z. Poses use the conventions of
:mod:`edgepose.relocalization.geometry` (camera centre, world-to-camera quaternion).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edgepose.errors import DatasetError
from edgepose.relocalization.geometry import normalize_quaternion, rotation_to_quaternion
from edgepose.sources.images import is_image_path, read_image


@dataclass
class Quad:
    """A textured planar rectangle: corner ``origin``, edges ``u`` (texture columns) and ``v`` (texture rows)."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray  # BGR uint8
    name: str = ""

    def point(self, s: float, t: float) -> np.ndarray:
        """World point at texture fraction (s along u, t along v)."""
        return self.origin + s * self.u + t * self.v


@dataclass
class Scene:
    quads: list[Quad]
    name: str = "scene"
    #: region camera centres are drawn from: (min xyz, max xyz)
    bounds: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.array([-2.5, -0.3, -2.5]), np.array([2.5, 0.3, 2.5]))
    )


@dataclass(frozen=True)
class CameraPose6:
    """A pose as the renderer uses it: centre ``c`` and world-to-camera rotation ``r``."""

    c: np.ndarray
    r: np.ndarray

    @property
    def quaternion(self) -> np.ndarray:
        return rotation_to_quaternion(self.r)


# --------------------------------------------------------------------------- camera geometry


def intrinsics(width: int, height: int, hfov_deg: float = 60.0) -> np.ndarray:
    """Pinhole ``K`` with square pixels and the principal point at the image centre."""
    f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def rotation_from_euler(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """World-to-camera rotation of a camera turned by yaw (about world y, down), then pitch (camera x), then roll (camera z).

    Positive yaw turns the view from +z towards +x, positive pitch looks up.
    """
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array(
        [[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]]
    )  # forward -> (0, -sin p, cos p): up
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    r_wc = ry @ rx @ rz  # camera-to-world
    return r_wc.T


def project(k: np.ndarray, r: np.ndarray, c: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``(N, 2)`` of world points ``(N, 3)``: ``p ~ K R (X - c)``."""
    x = (np.asarray(points, np.float64).reshape(-1, 3) - c) @ r.T
    uv = x @ k.T
    return uv[:, :2] / uv[:, 2:3]


def plane_homography(k: np.ndarray, r: np.ndarray, c: np.ndarray, quad: Quad) -> np.ndarray:
    """``H`` with ``H (s, t, 1)^T ~ pixel`` for the quad's texture fractions ``s, t`` (scaled by the depth)."""
    return k @ np.column_stack([r @ quad.u, r @ quad.v, r @ (quad.origin - c)])


# --------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=4)
def _pixel_grid(w: int, h: int) -> np.ndarray:
    """Homogeneous pixel centres ``(3, h*w)``, row-major."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.ones(w * h, np.float32)])


def render(
    scene: Scene,
    pose: CameraPose6,
    size: tuple[int, int],
    hfov_deg: float = 60.0,
    supersample: int = 2,
    background: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """The BGR image (``size`` = width, height) the camera at ``pose`` sees."""
    w, h = size
    ss = max(1, int(supersample))
    W, H = w * ss, h * ss
    k = intrinsics(W, H, hfov_deg)
    pix = _pixel_grid(W, H)
    best_inv_depth = np.zeros(W * H, np.float32)
    best = np.full(W * H, -1, np.int8)
    # texture coordinates of the winning plane, per pixel
    best_s = np.full(W * H, -1.0, np.float32)
    best_t = np.full(W * H, -1.0, np.float32)
    for i, q in enumerate(scene.quads):
        hom = plane_homography(k, pose.r, pose.c, q)
        if abs(np.linalg.det(hom)) < 1e-12:  # the camera centre lies in the plane: it sees the quad edge-on
            continue
        st = np.linalg.inv(hom).astype(np.float32) @ pix
        inv_depth = st[2]
        front = inv_depth > 1e-9
        s = np.divide(st[0], inv_depth, out=np.full_like(inv_depth, -1.0), where=front)
        t = np.divide(st[1], inv_depth, out=np.full_like(inv_depth, -1.0), where=front)
        hit = front & (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1) & (inv_depth > best_inv_depth)
        best_inv_depth[hit] = inv_depth[hit]
        best[hit] = i
        best_s[hit] = s[hit]
        best_t[hit] = t[hit]
    out = np.empty((H * W, 3), np.uint8)
    out[:] = background
    for i in np.unique(best):
        if i < 0:
            continue
        q = scene.quads[i]
        sel = best == i
        th, tw = q.texture.shape[:2]
        # remap takes image-shaped maps (< 32767 a side); pixels of other planes sample garbage and are dropped.
        mx = (best_s * (tw - 1)).reshape(H, W)
        my = (best_t * (th - 1)).reshape(H, W)
        out[sel] = cv2.remap(q.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[sel]
    img = out.reshape(H, W, 3)
    return img if ss == 1 else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- the room


def list_photos(folder: str | Path) -> list[Path]:
    """Photographs under ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if is_image_path(p) and p.is_file())


def _panorama(photos: Sequence[np.ndarray], height: int, aspect: float) -> np.ndarray:
    """Photos side by side at one height, cropped/tiled to ``aspect`` (width / height)."""
    strips = [
        cv2.resize(p, (max(1, round(p.shape[1] * height / p.shape[0])), height), interpolation=cv2.INTER_AREA)
        for p in photos
    ]
    pano = np.concatenate(strips, axis=1)
    want = max(1, round(height * aspect))
    while pano.shape[1] < want:
        pano = np.concatenate([pano, pano], axis=1)
    return np.ascontiguousarray(pano[:, :want])


def make_room(
    photos: Sequence[np.ndarray],
    width: float = 8.0,
    depth: float = 8.0,
    height: float = 3.0,
    texture_px_per_m: float = 96.0,
    name: str = "synthetic-room",
) -> Scene:
    """A box room centred on the origin (floor at ``y = +height/2``) with photographs on its six planes.

    Walls take three photos each (a panorama), floor and ceiling one each; the
    photos are used in the given order and repeat if there are fewer than 14.
    """
    if not photos:
        raise ValueError("make_room needs at least one photograph")

    def take(n: int, start: int) -> list[np.ndarray]:
        return [photos[(start + j) % len(photos)] for j in range(n)]

    x0, x1, z0, z1 = -width / 2, width / 2, -depth / 2, depth / 2
    top, bottom = -height / 2, height / 2
    th = max(16, round(height * texture_px_per_m))
    quads = []
    # Walls: u runs left-to-right as seen from inside the room, v downwards.
    walls = [
        ("front", np.array([x0, top, z1]), np.array([width, 0, 0])),
        ("right", np.array([x1, top, z1]), np.array([0, 0, -depth])),
        ("back", np.array([x1, top, z0]), np.array([-width, 0, 0])),
        ("left", np.array([x0, top, z0]), np.array([0, 0, depth])),
    ]
    for i, (nm, o, u) in enumerate(walls):
        tex = _panorama(take(3, 3 * i), th, np.linalg.norm(u) / height)
        quads.append(Quad(o.astype(float), u.astype(float), np.array([0.0, height, 0.0]), tex, nm))
    fw, fd = (
        round(width * texture_px_per_m / 2),
        round(depth * texture_px_per_m / 2),
    )  # floor/ceiling: half density, seen obliquely
    floor_tex = cv2.resize(photos[12 % len(photos)], (fw, fd), interpolation=cv2.INTER_AREA)
    ceil_tex = cv2.resize(photos[13 % len(photos)], (fw, fd), interpolation=cv2.INTER_AREA)
    quads.append(
        Quad(np.array([x0, bottom, z1]), np.array([width, 0.0, 0]), np.array([0.0, 0, -depth]), floor_tex, "floor")
    )
    quads.append(
        Quad(np.array([x0, top, z0]), np.array([width, 0.0, 0]), np.array([0.0, 0, depth]), ceil_tex, "ceiling")
    )
    margin = 1.5
    bounds = (np.array([x0 + margin, top + 1.2, z0 + margin]), np.array([x1 - margin, bottom - 1.2, z1 - margin]))
    return Scene(quads, name, bounds)


def load_room(image_folder: str | Path, max_side: int = 640, **kw) -> Scene:
    """:func:`make_room` with the photographs of a folder (e.g. ``../shared/images``)."""
    paths = list_photos(image_folder)
    if not paths:
        raise DatasetError(
            f"no photographs found under {image_folder}.",
            "pass a folder with JPEG/PNG photos (e.g. ../shared/images) to texture the room.",
        )
    photos = []
    for p in paths:
        try:
            img = read_image(p, error=DatasetError)
        except DatasetError:
            continue  # a photo that does not decode only leaves the room with one texture fewer
        s = max_side / max(img.shape[:2])
        photos.append(cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img)
    return make_room(photos, **kw)


# --------------------------------------------------------------------------- trajectories

#: Yaw range of the cameras. 270 deg, not 360: a quaternion's w >= 0 hemisphere then holds all
#: orientations continuously (w = cos(yaw/2) >= 0.38), so the regression target has no jump.
YAW_RANGE_DEG = 135.0


def random_poses(
    scene: Scene, n: int, seed: int = 0, yaw_deg: float = YAW_RANGE_DEG, pitch_deg: float = 15.0, roll_deg: float = 5.0
) -> list[CameraPose6]:
    """``n`` poses drawn uniformly: centres in the scene's bounds, yaw/pitch/roll in +-ranges (a dense capture)."""
    rng = np.random.default_rng(seed)
    lo, hi = scene.bounds
    out = []
    for _ in range(n):
        c = rng.uniform(lo, hi)
        r = rotation_from_euler(
            rng.uniform(-yaw_deg, yaw_deg), rng.uniform(-pitch_deg, pitch_deg), rng.uniform(-roll_deg, roll_deg)
        )
        out.append(CameraPose6(c, r))
    return out


def walk_poses(scene: Scene, n: int, seed: int = 1, yaw_deg: float = YAW_RANGE_DEG * 0.9) -> list[CameraPose6]:
    """A smooth walk through the room (a held-out test trajectory): Lissajous path, sweeping gaze."""
    rng = np.random.default_rng(seed)
    lo, hi = scene.bounds
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    ph = rng.uniform(0, 2 * np.pi, 6)
    out = []
    for t in np.linspace(0.0, 1.0, n, endpoint=False):
        c = mid + half * 0.85 * np.array(
            [np.sin(2 * np.pi * t + ph[0]), np.sin(6 * np.pi * t + ph[1]), np.sin(4 * np.pi * t + ph[2])]
        )
        yaw = yaw_deg * np.sin(2 * np.pi * 1.5 * t + ph[3])
        pitch = 10.0 * np.sin(2 * np.pi * 5 * t + ph[4])
        roll = 3.0 * np.sin(2 * np.pi * 3 * t + ph[5])
        out.append(CameraPose6(c, rotation_from_euler(yaw, pitch, roll)))
    return out


def pose_arrays(poses: Sequence[CameraPose6]) -> tuple[np.ndarray, np.ndarray]:
    """(positions ``(N, 3)``, quaternions ``(N, 4)`` with ``w >= 0``)."""
    return np.array([p.c for p in poses]), normalize_quaternion(np.array([p.quaternion for p in poses]))
