"""Decoders on synthetic heads whose answer is known exactly (both multi-pose decoders: numba and numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.decode import compiled, multi
from edgepose.decode.heads import Heads
from edgepose.decode.multi import local_maxima, soft_keypoint_nms, traversal_tables
from edgepose.decode.single import decode_single_pose
from edgepose.types import KEYPOINT_INDEX, NUM_KEYPOINTS, POSE_EDGES

STRIDE = 16
H, W = 31, 41  # 481x641 input


def person(cx: float, cy: float, scale: float = 1.0) -> np.ndarray:
    """(17, 2) y, x input pixels of an upright person centred at (cx, cy)."""
    body = {
        "nose": (0, -100),
        "left_eye": (8, -108),
        "right_eye": (-8, -108),
        "left_ear": (16, -104),
        "right_ear": (-16, -104),
        "left_shoulder": (30, -70),
        "right_shoulder": (-30, -70),
        "left_elbow": (40, -20),
        "right_elbow": (-40, -20),
        "left_wrist": (45, 25),
        "right_wrist": (-45, 25),
        "left_hip": (20, 20),
        "right_hip": (-20, 20),
        "left_knee": (22, 80),
        "right_knee": (-22, 80),
        "left_ankle": (24, 140),
        "right_ankle": (-24, 140),
    }
    return np.array([[cy + scale * body[n][1], cx + scale * body[n][0]] for n in KEYPOINT_INDEX], np.float32)


def synth_heads(people: list[np.ndarray], peak: float = 6.0, local: float | None = None, weights=None) -> Heads:
    """Heads for people at known positions.

    Heatmap: a logit bump around each keypoint. Short offsets at every cell point to the
    nearest person's keypoint (within ``local`` cells if given). Displacements at every
    cell hold the nearest person's edge vectors.
    """
    weights = weights or [1.0] * len(people)
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32) * STRIDE
    heat = np.full((H, W, NUM_KEYPOINTS), -8.0, np.float32)
    offsets = np.zeros((H, W, 34), np.float32)
    disp = np.zeros((H, W, 64), np.float32)
    dist_best = np.full((H, W, NUM_KEYPOINTS), np.inf, np.float32)
    owner = np.zeros((H, W), int)
    centre_d = np.full((H, W), np.inf)
    for i, kp in enumerate(people):
        c = kp.mean(axis=0)
        d = (gy - c[0]) ** 2 + (gx - c[1]) ** 2
        owner[d < centre_d] = i
        centre_d = np.minimum(centre_d, d)
    for i, kp in enumerate(people):
        mask = owner == i
        for k in range(NUM_KEYPOINTS):
            dy, dx = kp[k, 0] - gy, kp[k, 1] - gx
            d2 = (dy**2 + dx**2) / STRIDE**2
            heat[..., k] = np.maximum(heat[..., k], peak * weights[i] - 2.0 * d2)
            closer = d2 < dist_best[..., k]
            sel = mask if local is None else closer & (d2 <= local**2)
            offsets[..., k][sel] = dy[sel]
            offsets[..., 17 + k][sel] = dx[sel]
            dist_best[..., k] = np.minimum(dist_best[..., k], d2)
        for e, (a, b) in enumerate(POSE_EDGES):
            vec = kp[b] - kp[a]
            disp[..., e][mask], disp[..., 16 + e][mask] = vec[0], vec[1]
            disp[..., 32 + e][mask], disp[..., 48 + e][mask] = -vec[0], -vec[1]
    return Heads(heat, offsets, disp, STRIDE)


@pytest.fixture(params=["numba", "numpy"])
def decode_multiple_poses(request):
    return {"numba": compiled, "numpy": multi}[request.param].decode_multiple_poses


def test_traversal_tables_cover_every_part_once_per_root():
    tables = traversal_tables(False)
    for root in range(NUM_KEYPOINTS):
        children = [int(c) for edges, valid in tables for c in edges[root][valid[root]][:, 1]]
        assert sorted(children + [root]) == list(range(NUM_KEYPOINTS))
    assert len(tables) == 8  # ankle to the other ankle is the longest path


def test_single_person_is_recovered_exactly(decode_multiple_poses):
    truth = person(320, 240)
    heads = synth_heads([truth])
    dec = decode_multiple_poses(heads, max_poses=5, score_threshold=0.5, nms_radius=20)
    assert len(dec) == 1
    np.testing.assert_allclose(dec.keypoints_yx[0], truth, atol=0.05)
    assert dec.keypoint_scores.min() > 0.99 and dec.pose_scores[0] > 0.99


def test_single_pose_decoder_takes_argmax_plus_offset():
    truth = person(300, 250)
    yx, scores, score = decode_single_pose(synth_heads([truth]))
    np.testing.assert_allclose(yx, truth, atol=1e-3)
    assert scores.shape == (17,) and score > 0.99


def test_two_people_best_first_and_max_poses(decode_multiple_poses):
    a, b = person(150, 240), person(480, 240, scale=0.9)
    heads = synth_heads([a, b], weights=[1.0, 0.7])
    dec = decode_multiple_poses(heads, max_poses=10, score_threshold=0.5, nms_radius=20)
    assert len(dec) == 2
    np.testing.assert_allclose(dec.keypoints_yx[0], a, atol=0.05)
    np.testing.assert_allclose(dec.keypoints_yx[1], b, atol=0.05)
    assert dec.pose_scores[0] >= dec.pose_scores[1]
    one = decode_multiple_poses(heads, max_poses=1, score_threshold=0.5, nms_radius=20)
    assert len(one) == 1
    np.testing.assert_allclose(one.keypoints_yx[0], a, atol=0.05)


def test_nothing_above_threshold_gives_no_pose(decode_multiple_poses):
    heads = synth_heads([person(320, 240)], peak=-3.0)
    assert len(decode_multiple_poses(heads, score_threshold=0.25)) == 0


def test_local_maxima_are_sorted_and_thresholded():
    heads = synth_heads([person(320, 240)])
    ys, xs, ks, sc = local_maxima(heads.heatmaps, 0.0)
    assert np.all(np.diff(sc) <= 0)
    assert sorted(set(ks.tolist())) == list(range(17))  # one peak per part
    assert np.all(sc >= 0.0)


def test_soft_nms_zeroes_parts_claimed_by_a_better_pose():
    pos = np.zeros((2, 17, 2), np.float32)
    pos[1, 9:] = 50.0  # pose 1 shares parts 0..8 with pose 0
    kp = np.ones((2, 17), np.float32)
    scores = soft_keypoint_nms(pos, kp, np.array([0.9, 0.8]), r2=1.0)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(8 / 17)


def grow_from(decoder: str, heads: Heads, root_yx: np.ndarray, root: int, coral_quirk: bool) -> np.ndarray:
    """(17, 2) grid positions of the pose grown from one root part by the given decoder's grower."""
    if decoder == "numpy":
        return multi._Grower(heads, coral_quirk).grow(root_yx[None], np.array([root]))[0][0]
    pos, logit = np.empty((NUM_KEYPOINTS, 2), np.float32), np.empty(NUM_KEYPOINTS, np.float32)
    heat, short, mid, q = compiled._tables(heads)
    compiled._grow(
        heat,
        short,
        mid,
        q,
        compiled._edges(coral_quirk),
        root,
        np.float32(root_yx[0]),
        np.float32(root_yx[1]),
        np.float32(1 / heads.stride),
        multi.REFINE_STEPS,
        pos,
        logit,
    )
    return pos


@pytest.mark.parametrize("decoder", ["numba", "numpy"])
def test_coral_quirk_reads_channels_16_and_32_for_left_eye_to_nose(decoder):
    """Coral's op reads channels (16, 32) for backward edge 0; the fixed decoder reads (32, 48)."""
    heads = synth_heads([person(320, 240)])
    heads.offsets[:] = 0.0  # no refinement: the nose lands exactly where the edge points
    heads.displacements[..., 16] = 5.0  # forward dx, edge 0
    heads.displacements[..., 32] = -24.0  # backward dy, edge 0
    heads.displacements[..., 48] = 40.0  # backward dx, edge 0
    eye = np.array([10.0, 20.0], np.float32)  # grid units
    nose = KEYPOINT_INDEX["nose"]
    fixed = grow_from(decoder, heads, eye, KEYPOINT_INDEX["left_eye"], coral_quirk=False)
    quirk = grow_from(decoder, heads, eye, KEYPOINT_INDEX["left_eye"], coral_quirk=True)
    np.testing.assert_allclose(fixed[nose], eye + np.array([-24.0, 40.0]) / STRIDE, atol=1e-5)
    np.testing.assert_allclose(quirk[nose], eye + np.array([5.0, -24.0]) / STRIDE, atol=1e-5)
