"""Tracker: stable IDs, missed frames, no ID reuse, smoothing; real video in test_tracking_video.py."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edgepose.actions.synthetic import figure_pose, standing
from edgepose.tracking import OneEuroFilter, Tracker, TrackingConfig
from edgepose.tracking.metrics import continuity_breaks, continuity_pairs, score_against_truth
from edgepose.types import Pose
from tests.crowds import crowd_scene


def person(x: float, y: float = 300.0, size: float = 60.0, score: float = 0.9) -> Pose:
    return figure_pose(standing(y + 1.9 * size, x=x, size=size), score)


def test_two_people_crossing_keep_their_ids():
    tr = Tracker(TrackingConfig())
    ids = []
    for k in range(60):
        t = k / 30
        # A walks right, B walks left; they pass each other at different depths (sizes), as people do.
        a = person(100 + 10 * k, y=300, size=60)
        b = person(700 - 10 * k, y=330, size=75)
        out = tr.update([b, a] if k % 2 else [a, b], t)
        assert len(out) == 2
        ids.append((a.track_id, b.track_id))
    assert len(set(ids)) == 1 and ids[0][0] != ids[0][1]


def test_missed_frames_within_max_age_keep_the_id_and_ids_are_never_reused():
    tr = Tracker(TrackingConfig(max_age=5))
    seen = []
    for k in range(40):
        visible = not (10 <= k < 14) and not (20 <= k < 30)  # a 4-frame gap, then a 10-frame gap
        poses = [person(200 + 3 * k)] if visible else []
        tr.update(poses, k / 30)
        if poses:
            seen.append((k, poses[0].track_id))
    before = {i for k, i in seen if k < 10}
    after_short = {i for k, i in seen if 14 <= k < 20}
    after_long = {i for k, i in seen if k >= 30}
    assert before == after_short  # survived 4 missed frames
    assert len(after_long) == 1 and after_long.isdisjoint(before)  # 10 > max_age: a new ID, not the old one
    assert max(after_long) > max(before)


def test_ids_are_not_reused_after_reset():
    tr = Tracker()
    tr.update([person(100)], 0.0)
    first = tr.tracks[0].id
    tr.update([person(100)], 5.0)
    tr.update([person(100)], 1.0)  # time went backwards: a new source
    assert tr.tracks[0].id > first


def test_min_hits_hides_one_frame_ghosts():
    tr = Tracker(TrackingConfig(min_hits=3))
    outs = []
    for k in range(6):
        poses = [person(200 + k)] + ([person(900)] if k == 2 else [])
        outs.append(tr.update(poses, k / 30))
    assert [len(o) for o in outs] == [0, 0, 1, 1, 1, 1]
    assert all(o[0].track_id == outs[2][0].track_id for o in outs[2:])


def test_far_away_pose_does_not_join_a_track():
    tr = Tracker(TrackingConfig())
    a = person(100)
    tr.update([a], 0.0)
    b = person(1000)
    tr.update([b], 1 / 30)
    assert b.track_id != a.track_id


def test_crowd_scene_identity():
    """Six people walking back and forth with misses, occlusion gaps and ghosts: few switches."""
    total_sw, ids_pp = 0, []
    for seed in (1, 2):
        ts, frames, truth = crowd_scene(people=6, seconds=20, fps=15, seed=seed)
        tr = Tracker(TrackingConfig(max_age=15))
        tids = []
        for t, poses in zip(ts, frames):
            tr.update(poses, t)
            tids.append([p.track_id for p in poses])
        s = score_against_truth(truth, tids)
        assert s.coverage == 1.0
        total_sw += s.id_switches
        ids_pp.append(s.ids_per_person)
    # ~1,600 detections of 12 people: a handful of switches (after long gaps next to another walker).
    assert total_sw <= 15, total_sw
    assert np.mean(ids_pp) <= 2.0


def test_continuity_reference_finds_breaks():
    ts, frames, _ = crowd_scene(people=4, seconds=5, fps=15, seed=3, ghost_rate=0.0)
    pairs = continuity_pairs(frames)
    assert len(pairs) > 100
    tr = Tracker()
    for t, poses in zip(ts, frames):
        tr.update(poses, t)
    good = continuity_breaks(frames, pairs)
    # Shuffle IDs within one frame: the reference must notice.
    k = next(t for t, _, _ in pairs if len(frames[t + 1]) >= 2)
    a, b = frames[k + 1][0], frames[k + 1][1]
    a.track_id, b.track_id = b.track_id, a.track_id
    assert continuity_breaks(frames, pairs) > good


def test_smoothing_reduces_jitter_and_keeps_raw():
    rng = np.random.default_rng(0)
    cfg = TrackingConfig(smoothing=True)
    tr = Tracker(cfg)
    base = person(400)
    raw_err, sm_err = [], []
    for k in range(90):
        kp = (base.keypoints + rng.normal(0, 3.0, base.keypoints.shape)).astype(np.float32)
        given = kp.copy()
        p = Pose(kp, base.scores, 0.9)
        tr.update([p], k / 30)
        assert np.array_equal(kp, given)  # the caller's array (Pose does not copy float32) is not smoothed in place
        assert np.array_equal(p.extra["raw_keypoints"].shape, (17, 2))
        if k > 10:
            raw_err.append(np.abs(p.extra["raw_keypoints"] - base.keypoints).mean())
            sm_err.append(np.abs(p.keypoints - base.keypoints).mean())
    assert np.mean(sm_err) < 0.6 * np.mean(raw_err)


def test_smoothing_follows_fast_motion():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.3)
    lag = []
    for k in range(60):
        x = np.array([[10.0 * k, 0.0]])  # 300 px/s = 5 torso sizes/s at scale 60
        y = f(x, k / 30, scale=60.0)
        lag.append(x[0, 0] - y[0, 0])
    assert lag[-1] < 15.0  # less than 1.5 frames behind


def test_one_euro_restarts_after_a_gap():
    f = OneEuroFilter()
    f(np.array([[0.0, 0.0]]), 0.0)
    f(np.array([[0.0, 0.0]]), 0.1, visible=np.array([False]))
    y = f(np.array([[100.0, 0.0]]), 0.2)
    assert y[0, 0] == pytest.approx(100.0)  # a part that reappears starts from where it is seen


def test_tracking_config_validation():
    with pytest.raises(ValidationError):
        TrackingConfig(max_age=-1)
    with pytest.raises(ValidationError):
        TrackingConfig(min_similarity=1.5)
    with pytest.raises(ValidationError):
        TrackingConfig(smoothing_min_cutoff=0)
    with pytest.raises(ValidationError):
        TrackingConfig(bogus=True)
