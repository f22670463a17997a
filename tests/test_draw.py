"""Drawing: skeleton and keypoints where the parts are, colours per track, labels, HUD."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.draw import (
    DEFAULT_COLOR,
    actions_by_track,
    draw_hud,
    draw_poses,
    draw_result,
    line_thickness,
    track_color,
)
from edgepose.types import KEYPOINT_INDEX, KEYPOINT_NAMES, SKELETON, ActionEvent, FrameResult, Pose
from tests.conftest import SHARED
from tests.reference import reference, reference_csv

COUPLE = SHARED / "images" / "test_couple.jpg"


def coral_reference_poses() -> list[Pose]:
    """Coral's expected poses for test_couple.jpg, mapped from model-input (641x481) to image pixels."""
    img_h, img_w = 1278, 1920
    return [pose.scaled(img_w / 641, img_h / 481) for pose in reference(reference_csv("481_641"))]


def stick(x0: float = 100, y0: float = 40, score: float = 0.9, track_id: int | None = None) -> Pose:
    """An upright stick figure: every part confident unless changed by the caller."""
    kp = np.zeros((17, 2), np.float32)
    pos = {
        "nose": (0, 0),
        "left_eye": (5, -5),
        "right_eye": (-5, -5),
        "left_ear": (10, -2),
        "right_ear": (-10, -2),
        "left_shoulder": (30, 40),
        "right_shoulder": (-30, 40),
        "left_elbow": (45, 90),
        "right_elbow": (-45, 90),
        "left_wrist": (50, 140),
        "right_wrist": (-50, 140),
        "left_hip": (20, 140),
        "right_hip": (-20, 140),
        "left_knee": (22, 210),
        "right_knee": (-22, 210),
        "left_ankle": (24, 280),
        "right_ankle": (-24, 280),
    }
    for n, (dx, dy) in pos.items():
        kp[KEYPOINT_INDEX[n]] = (x0 + dx, y0 + dy)
    return Pose(kp, np.full(17, score, np.float32), score, track_id=track_id)


def has_color(img: np.ndarray, x: float, y: float, color, r: int = 2) -> bool:
    """A pixel near (x, y) of this hue: anti-aliased lines are dimmer than the colour, so compare
    colours normalised by their brightest channel."""
    patch = img[max(0, int(y) - r) : int(y) + r + 1, max(0, int(x) - r) : int(x) + r + 1].reshape(-1, 3).astype(float)
    bright = patch[patch.max(axis=1) >= 120]
    if not len(bright):
        return False
    c = np.array(color, float)
    return bool((np.abs(bright / bright.max(axis=1, keepdims=True) - c / c.max()).max(axis=1) < 0.12).any())


def blank(h: int = 360, w: int = 240) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def test_skeleton_and_keypoints_are_drawn_where_the_parts_are():
    pose = stick()
    img = draw_poses(blank(), [pose], show_ids=False)
    for a, b in SKELETON:
        mid = (pose.keypoints[a] + pose.keypoints[b]) / 2
        assert has_color(img, *mid, DEFAULT_COLOR), (KEYPOINT_NAMES[a], KEYPOINT_NAMES[b])
    # keypoint circles: the circle outline passes at radius r from the centre
    x, y = pose.keypoints[KEYPOINT_INDEX["left_ankle"]]
    assert img[int(y) - 8 : int(y) + 9, int(x) - 8 : int(x) + 9].any()
    # far from the figure nothing is drawn
    assert not img[:, 200:].any()


def test_thresholds_hide_weak_parts_and_poses():
    pose = stick()
    knee = KEYPOINT_INDEX["left_knee"]
    pose.scores[knee] = 0.1
    img = draw_poses(blank(), [pose], show_ids=False)
    kx, ky = pose.keypoints[knee]
    assert not img[int(ky) - 1 : int(ky) + 2, int(kx) - 1 : int(kx) + 2].any()  # no circle, no limb through it
    hip, ankle = pose.keypoints[KEYPOINT_INDEX["left_hip"]], pose.keypoints[KEYPOINT_INDEX["left_ankle"]]
    assert not has_color(img, *((hip + pose.keypoints[knee]) / 2), DEFAULT_COLOR)
    assert not has_color(img, *((ankle + pose.keypoints[knee]) / 2), DEFAULT_COLOR)
    weak = stick(score=0.2)
    assert not draw_poses(blank(), [weak], min_pose_score=0.25).any()
    assert draw_poses(blank(), [weak], min_pose_score=0.1, min_part_score=0.1).any()


def test_copy_and_in_place():
    img = blank()
    out = draw_poses(img, [stick()], copy=True)
    assert out is not img and not img.any() and out.any()
    out2 = draw_poses(img, [stick()])
    assert out2 is img and img.any()


def test_non_contiguous_view_is_drawn_in_place():
    big = np.zeros((360, 480, 3), np.uint8)
    view = big[:, ::2]
    assert not view.flags.c_contiguous
    out = draw_poses(view, [stick()], show_ids=False)
    assert out is view and big.any()


def test_track_colours_and_labels():
    assert track_color(None) == DEFAULT_COLOR
    assert track_color(1) != track_color(2) and track_color(3) == track_color(3)
    a, b = stick(60, 40, track_id=1), stick(180, 40, track_id=2)
    img = draw_poses(blank(360, 260), [a, b])
    sh = KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["left_hip"]
    assert has_color(img, *((a.keypoints[sh[0]] + a.keypoints[sh[1]]) / 2), track_color(1))
    assert has_color(img, *((b.keypoints[sh[0]] + b.keypoints[sh[1]]) / 2), track_color(2))
    # label box in the track colour just above the figure's top
    top = int(a.keypoints[:, 1].min())
    assert has_color(img, a.keypoints[:, 0].min() + 3, top - 8, track_color(1), r=3)
    no_ids = draw_poses(blank(360, 260), [a, b], show_ids=False)
    assert not has_color(no_ids, a.keypoints[:, 0].min() + 3, top - 8, track_color(1), r=3)


def test_action_labels_widen_the_label():
    p = stick(60, 60, track_id=4)
    top = int(p.keypoints[:, 1].min()) - 8  # the label sits above the figure (clear of its keypoint circles)

    def label_right_edge(img: np.ndarray) -> int:
        return int(np.nonzero(img[:top].any(axis=2))[1].max())

    plain = draw_poses(blank(360, 320), [p])
    labelled = draw_poses(blank(360, 320), [p], events=[ActionEvent(4, "waving", "start", 1.0)])
    assert label_right_edge(labelled) > label_right_edge(plain) + 30


def test_actions_by_track():
    a = stick(track_id=1)
    a.extra["actions"] = {"standing": 0.9}
    b = stick(track_id=2)
    b.extra["actions"] = ["walking"]
    c = stick()  # untracked: no label
    events = [
        ActionEvent(1, "squat", "count", 0.0, count=3),
        ActionEvent(1, "squat", "count", 0.0, count=4),
        ActionEvent(2, "walking", "end", 0.0, end=1.0),
        ActionEvent(3, "fall", "instant", 2.0),
    ]
    assert actions_by_track([a, b, c], events) == {1: ["standing", "squat x4"], 3: ["fall"]}


def test_bad_coordinates_do_not_crash():
    p = stick()
    p.keypoints[0] = (np.nan, 5)
    p.keypoints[5] = (1e12, -1e12)
    out = draw_poses(blank(), [p], copy=True)
    assert out.any()


def test_rejects_non_bgr_images():
    with pytest.raises(ValueError, match="BGR uint8"):
        draw_poses(np.zeros((10, 10), np.uint8), [])
    with pytest.raises(ValueError):
        draw_poses(np.zeros((10, 10, 3), np.float32), [])


def test_real_image_with_coral_reference_poses():
    img = cv2.imread(str(COUPLE))
    poses = coral_reference_poses()
    assert len(poses) >= 2
    out = draw_poses(img, poses, copy=True)
    assert line_thickness(*img.shape[:2]) == 2
    diff = np.abs(out.astype(int) - img.astype(int)).sum(axis=2) > 0
    for pose in poses:
        if pose.score < 0.25:
            continue
        for i in np.flatnonzero(pose.scores >= 0.25):
            x, y = pose.keypoints[i].astype(int)
            r = 12
            assert diff[max(0, y - r) : y + r, max(0, x - r) : x + r].any(), KEYPOINT_NAMES[i]
    # drawing is local: most of the image is untouched
    assert diff.mean() < 0.05


def test_hud_darkens_a_box_and_writes_text():
    img = np.full((240, 320, 3), 200, np.uint8)
    draw_hud(img, ["FPS 12.3", "people 2"])
    box = img[10:40, 10:60]
    assert (box < 200).any() and (box == 255).any()  # darkened background, white text
    assert (img[200:, 200:] == 200).all()
    img2 = np.full((240, 320, 3), 200, np.uint8)
    draw_hud(img2, {"fps": 9.5})
    assert (img2[10:30, 10:40] != 200).any()
    assert draw_hud(img2, []) is img2


def test_draw_result():
    img = blank()
    res = FrameResult(0, 0.0, [stick(track_id=1)], 240, 360, image=img, timings={"infer": 12.5})
    out = draw_result(res, fps=10.0)
    assert out is not img and not img.any() and out.any()
    with pytest.raises(ValueError, match="no image"):
        draw_result(FrameResult(0, 0.0, [], 10, 10))
