"""Draw poses, track ids, actions and a status HUD onto BGR frames (OpenCV only).

The look follows posenet-python's ``draw_skel_and_kp`` from the seed article:
skeleton lines between confident parts and a circle per keypoint whose size
grows with its score, in cyan ``(255, 255, 0)``; with tracking on, each track
id gets its own colour and a label ``#id action, action``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np

from .types import SKELETON, ActionEvent, FrameResult, Pose

#: The seed article's colour (BGR) for poses without a track id.
DEFAULT_COLOR: tuple[int, int, int] = (255, 255, 0)

#: Well-separated BGR colours (Tableau 10 + lighter variants) indexed by track id.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
    (34, 189, 188),
    (207, 190, 23),
    (232, 199, 174),
    (120, 187, 255),
    (138, 223, 152),
    (150, 152, 255),
    (213, 176, 197),
    (148, 156, 196),
    (210, 182, 247),
    (199, 199, 199),
    (141, 219, 219),
    (229, 218, 158),
)

_SKEL_A = np.array([a for a, _ in SKELETON], dtype=np.intp)
_SKEL_B = np.array([b for _, b in SKELETON], dtype=np.intp)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# cv2 drawing takes int32 pixel coordinates; keep wild values (a bad decode) drawable.
_COORD_LIMIT = 1 << 15


def track_color(track_id: int | None) -> tuple[int, int, int]:
    """Colour of a track (stable across frames); the seed's cyan when untracked."""
    if track_id is None:
        return DEFAULT_COLOR
    return PALETTE[int(track_id) % len(PALETTE)]


def line_thickness(height: int, width: int) -> int:
    """1 px up to ~540p, growing with the image so 1080p/4K drawings stay visible."""
    return max(1, int(round(min(height, width) / 540)))


def actions_by_track(poses: Iterable[Pose], events: Iterable[ActionEvent] | None = None) -> dict[int, list[str]]:
    """Current action labels per track id.

    From ``pose.extra["actions"]`` (a name, a list of names, or ``{name: confidence}``)
    and from this frame's events: ``start``/``instant`` show the action,
    ``count`` shows ``action xN``; ``end`` removes it.
    """
    out: dict[int, list[str]] = {}
    for p in poses:
        if p.track_id is None:
            continue
        acts = p.extra.get("actions") if p.extra else None
        if isinstance(acts, str):
            names = [acts]
        elif isinstance(acts, Mapping):
            names = [str(k) for k in acts]
        elif isinstance(acts, (list, tuple)):
            names = [str(a) for a in acts]
        else:
            names = []
        if names:
            out.setdefault(int(p.track_id), []).extend(names)
    for e in events or ():
        labels = out.setdefault(int(e.track_id), [])
        if e.kind == "count" and e.count is not None:
            labels[:] = [x for x in labels if x != e.action and not x.startswith(f"{e.action} x")]
            labels.append(f"{e.action} x{e.count}")
        elif e.kind in ("start", "instant"):
            labels.append(e.action)
        elif e.kind == "end":
            labels[:] = [x for x in labels if x != e.action]
    return {k: list(dict.fromkeys(v)) for k, v in out.items() if v}


class ActionLabels:
    """What each track is doing now, from the stream of action events, for every frame until it ends.

    A ``start`` shows the action until its ``end``; an ``instant`` (a fall) and a ``count``
    (``squat x3``) stay up for ``hold`` seconds. Feed every frame's events in order with
    :meth:`update`; it returns the labels to draw on that frame.
    """

    def __init__(self, hold: float = 1.5):
        self.hold = hold
        self._ongoing: dict[int, dict[str, str]] = {}
        self._recent: dict[int, dict[str, tuple[str, float]]] = {}

    def update(self, events: Iterable[ActionEvent], timestamp: float) -> dict[int, list[str]]:
        for e in events:
            tid = int(e.track_id)
            if e.kind == "start":
                self._ongoing.setdefault(tid, {})[e.action] = e.action
            elif e.kind == "end":
                self._ongoing.get(tid, {}).pop(e.action, None)
                self._recent.get(tid, {}).pop(e.action, None)
            elif e.kind == "count" and e.count is not None:
                self._recent.setdefault(tid, {})[e.action] = (f"{e.action} x{e.count}", timestamp + self.hold)
            else:  # instant
                self._recent.setdefault(tid, {})[e.action] = (e.action, timestamp + self.hold)
        out: dict[int, list[str]] = {}
        for tid, acts in self._ongoing.items():
            out.setdefault(tid, []).extend(a for a in acts.values() if a not in self._recent.get(tid, {}))
        for tid, recent in list(self._recent.items()):
            for action, (text, until) in list(recent.items()):
                if timestamp > until:
                    del recent[action]
                else:
                    out.setdefault(tid, []).append(text)
            if not recent:
                del self._recent[tid]
        return {k: v for k, v in out.items() if v}


def _label(img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float, thick: int) -> None:
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    h, w = img.shape[:2]
    x = min(max(0, x), max(0, w - tw - 4))
    y = min(max(th + base + 2, y), h - 1)
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 4, y), color, cv2.FILLED)
    # Dark text on light colours, white on dark ones.
    fg = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(img, text, (x + 2, y - base), _FONT, scale, fg, thick, cv2.LINE_AA)


def draw_poses(
    image_bgr: np.ndarray,
    poses: Sequence[Pose],
    min_pose_score: float = 0.25,
    min_part_score: float = 0.25,
    *,
    show_ids: bool = True,
    events: Iterable[ActionEvent] | None = None,
    copy: bool = False,
    labels: Mapping[int, Sequence[str]] | None = None,
) -> np.ndarray:
    """Draw skeletons and keypoints of ``poses`` (source-image pixels) on a BGR uint8 image.

    Poses below ``min_pose_score`` and parts below ``min_part_score`` are not
    drawn. Draws in place and returns the image, or onto a copy with ``copy=True``.
    Action labels come from ``labels`` (an :class:`ActionLabels` result: ongoing actions
    on every frame) when given, else from this frame's ``events`` and ``pose.extra``.
    """
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"draw_poses needs a BGR uint8 image (h, w, 3), got {image_bgr.dtype} {image_bgr.shape}")
    out = image_bgr.copy() if copy else image_bgr
    if not out.flags.c_contiguous:  # cv2 cannot draw into strided views
        out = np.ascontiguousarray(out)
    h, w = out.shape[:2]
    thick = line_thickness(h, w)
    radius_max = 4 * thick + 2
    font_scale = 0.45 * thick
    if not show_ids:
        labels = {}
    elif labels is None:
        labels = actions_by_track(poses, events)
    else:
        extra = actions_by_track(poses)  # labels a pose carries itself
        labels = {k: list(dict.fromkeys([*labels.get(k, []), *extra.get(k, [])])) for k in {*labels, *extra}}
    for pose in poses:
        if pose.score < min_pose_score:
            continue
        color = track_color(pose.track_id)
        vis = pose.scores >= min_part_score
        kp = pose.keypoints
        finite = np.isfinite(kp).all(axis=1)
        vis &= finite
        if not vis.any():
            continue
        pts = np.clip(np.rint(np.where(finite[:, None], kp, 0.0)), -_COORD_LIMIT, _COORD_LIMIT).astype(np.int32)
        edge = vis[_SKEL_A] & vis[_SKEL_B]
        if edge.any():
            segs = np.stack([pts[_SKEL_A[edge]], pts[_SKEL_B[edge]]], axis=1)
            cv2.polylines(out, list(segs), False, color, thick, cv2.LINE_AA)
        for i in np.flatnonzero(vis):
            r = max(2, int(round(radius_max * float(pose.scores[i]))))
            cv2.circle(out, (int(pts[i, 0]), int(pts[i, 1])), r, color, thick, cv2.LINE_AA)
        if show_ids and pose.track_id is not None:
            text = f"#{pose.track_id}"
            acts = labels.get(int(pose.track_id))
            if acts:
                text += " " + ", ".join(acts)
            vp = pts[vis]
            _label(out, text, int(vp[:, 0].min()), int(vp[:, 1].min()) - 4 * thick, color, font_scale, thick)
    if out is not image_bgr and not copy:
        image_bgr[...] = out
        return image_bgr
    return out


def draw_hud(
    image: np.ndarray, text_lines: Sequence[str] | Mapping[str, Any], *, origin: tuple[int, int] = (8, 8)
) -> np.ndarray:
    """Status text (FPS, people count, ...) top-left on a darkened box; in place, returns the image."""
    lines = (
        [f"{k}: {v}" for k, v in text_lines.items()]
        if isinstance(text_lines, Mapping)
        else [str(t) for t in text_lines]
    )
    if not lines:
        return image
    h, w = image.shape[:2]
    thick = line_thickness(h, w)
    scale = 0.5 * thick
    sizes = [cv2.getTextSize(t, _FONT, scale, thick) for t in lines]
    line_h = max(th + base for (_, th), base in sizes) + 4 * thick
    box_w = max(tw for (tw, _), _ in sizes) + 8 * thick
    x0, y0 = origin
    x1, y1 = min(w, x0 + box_w), min(h, y0 + line_h * len(lines) + 4 * thick)
    if x1 > x0 and y1 > y0:
        roi = image[y0:y1, x0:x1]
        roi //= 3  # darken the box so white text reads on any background
    for i, t in enumerate(lines):
        y = y0 + (i + 1) * line_h
        cv2.putText(image, t, (x0 + 4 * thick, y), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


def hud_lines(result: FrameResult, fps: float | None = None) -> list[str]:
    """Default HUD text for a frame: FPS, people and per-stage timings (ms)."""
    lines = []
    if fps is not None:
        lines.append(f"FPS {fps:.1f}")
    lines.append(f"people {len(result.poses)}")
    if result.timings:
        lines.append(" ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    return lines


def draw_result(
    result: FrameResult,
    image: np.ndarray | None = None,
    *,
    fps: float | None = None,
    hud: bool = True,
    min_pose_score: float = 0.25,
    min_part_score: float = 0.25,
    copy: bool = True,
) -> np.ndarray:
    """Poses, action labels and (optionally) the HUD of one pipeline result, on ``image`` or ``result.image``."""
    img = image if image is not None else result.image
    if img is None:
        raise ValueError("the FrameResult carries no image; pass image= (keep images in the pipeline to draw)")
    out = draw_poses(img, result.poses, min_pose_score, min_part_score, events=result.events, copy=copy)
    if hud:
        draw_hud(out, hud_lines(result, fps))
    return out
