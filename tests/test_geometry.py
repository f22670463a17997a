"""Geometry helpers: invariances and agreement between the single-pose and batch forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgepose import geometry as g
from edgepose.actions.synthetic import Figure, figure_keypoints

ALL = np.ones(17, bool)


def test_torso_size_and_centre_of_an_upright_figure():
    kp = figure_keypoints(Figure(x=100, y=200, size=50))
    assert g.torso_size(kp, ALL) == pytest.approx(50.0, rel=1e-4)
    assert g.body_centre(kp, ALL) == pytest.approx([100.0, 175.0], abs=1e-3)
    assert g.torso_tilt_deg(kp, ALL) == pytest.approx(0.0, abs=1e-3)


def test_fallbacks_when_parts_are_missing():
    kp = figure_keypoints(Figure(size=50))
    vis = ALL.copy()
    vis[[g.L_HIP, g.R_HIP]] = False
    assert np.isfinite(g.torso_size(kp, vis))
    assert g.body_centre(kp, vis) == pytest.approx(g.neck(kp, ALL), abs=1e-3)
    none = np.zeros(17, bool)
    assert math.isnan(g.torso_size(kp, none))
    assert np.isnan(g.body_centre(kp, none)).all()


def test_normalise_is_position_and_scale_invariant():
    f = Figure(hip_flex=40, knee_flex=60, l_arm=120)
    a = g.normalise(figure_keypoints(f), ALL)
    b = g.normalise(figure_keypoints(f.with_(x=900, y=50, size=200)), ALL)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_batch_forms_match_single_pose_forms():
    rng = np.random.default_rng(0)
    kps = rng.uniform(0, 500, (8, 17, 2)).astype(np.float32)
    vis = rng.random((8, 17)) > 0.3
    sizes = g.torso_size(kps, vis)
    centres = g.body_centre(kps, vis)
    for i in range(8):
        assert sizes[i] == pytest.approx(g.torso_size(kps[i], vis[i]), rel=1e-5)
        np.testing.assert_allclose(centres[i], g.body_centre(kps[i], vis[i]), rtol=1e-5)


def test_angles_and_tilt():
    assert g.angle_deg(np.array([0.0, 1]), np.array([0.0, 0]), np.array([1.0, 0])) == pytest.approx(90.0)
    assert g.angle_deg(np.array([0.0, 1]), np.array([0.0, 1]), np.array([1.0, 0])) != g.angle_deg(
        np.array([0.0, 1]), np.array([0.0, 0]), np.array([1.0, 0])
    )
    lying = figure_keypoints(Figure(roll=90))
    assert g.torso_tilt_deg(lying, ALL) == pytest.approx(90.0, abs=1e-3)


def test_oks_matrix_matches_oks_and_ranks_the_right_person():
    a = figure_keypoints(Figure(x=100))
    b = figure_keypoints(Figure(x=400))
    noisy = a + 2.0
    area = g.bbox_area(a, ALL)
    m = g.oks_matrix(np.stack([a, b]), np.stack([ALL, ALL]), noisy[None], ALL[None], np.array([area, area]))
    assert m.shape == (2, 1)
    assert m[0, 0] == pytest.approx(g.oks(a, ALL, noisy, ALL, area), rel=1e-5)
    assert m[0, 0] > 0.9 > 0.01 > m[1, 0]
    assert g.oks(a, ALL, a, np.zeros(17, bool), area) == 0.0


def test_mirror_swaps_sides():
    kp = figure_keypoints(Figure(l_arm=170))
    m, _ = g.mirror(kp, ALL, centre_x=320.0)
    assert m[g.R_WRIST, 1] == pytest.approx(kp[g.L_WRIST, 1])
    assert m[g.R_WRIST, 0] == pytest.approx(640.0 - kp[g.L_WRIST, 0])
