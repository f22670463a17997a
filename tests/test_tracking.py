"""Tracker: stable IDs, missed frames, no ID reuse, smoothing; real video in test_tracking_video.py."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edgepose.actions.synthetic import figure_pose, standing
from edgepose.errors import ConfigError
from edgepose.tracking import OneEuroFilter, Tracker, TrackingConfig, make_tracker
from edgepose.tracking.metrics import continuity_breaks, continuity_pairs, score_against_truth
from edgepose.tracking.synthetic import crowd_scene
from edgepose.types import Pose, PoseBlock
from tests.procs import NO_NUMBA, run_py


@pytest.fixture(params=["numpy", "numba"])
def make(request):
    """Both trackers: the reference (numpy) and the compiled one (numba, the default); each test runs on both."""
    return lambda config=None: make_tracker(config, request.param)


def person(x: float, y: float = 300.0, size: float = 60.0, score: float = 0.9) -> Pose:
    return figure_pose(standing(y + 1.9 * size, x=x, size=size), score)


def test_two_people_crossing_keep_their_ids(make):
    tr = make(TrackingConfig())
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


def test_missed_frames_within_max_age_keep_the_id_and_ids_are_never_reused(make):
    tr = make(TrackingConfig(max_age=5))
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


def test_ids_are_not_reused_after_reset(make):
    tr = make()
    tr.update([person(100)], 0.0)
    first = tr.tracks[0].id
    tr.update([person(100)], 5.0)
    tr.update([person(100)], 1.0)  # time went backwards: a new source
    assert tr.tracks[0].id > first


def test_min_hits_hides_one_frame_ghosts(make):
    tr = make(TrackingConfig(min_hits=3))
    outs = []
    for k in range(6):
        poses = [person(200 + k)] + ([person(900)] if k == 2 else [])
        outs.append(tr.update(poses, k / 30))
    assert [len(o) for o in outs] == [0, 0, 1, 1, 1, 1]
    assert all(o[0].track_id == outs[2][0].track_id for o in outs[2:])


def test_far_away_pose_does_not_join_a_track(make):
    tr = make(TrackingConfig())
    a = person(100)
    tr.update([a], 0.0)
    b = person(1000)
    tr.update([b], 1 / 30)
    assert b.track_id != a.track_id


def test_crowd_scene_identity(make):
    """Six people walking back and forth with misses, occlusion gaps and ghosts: few switches."""
    total_sw, ids_pp = 0, []
    for seed in (1, 2):
        ts, frames, truth = crowd_scene(people=6, seconds=20, fps=15, seed=seed)
        tr = make(TrackingConfig(max_age=15))
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


def test_continuity_reference_finds_breaks(make):
    ts, frames, _ = crowd_scene(people=4, seconds=5, fps=15, seed=3, ghost_rate=0.0)
    pairs = continuity_pairs(frames)
    assert len(pairs) > 100
    tr = make()
    for t, poses in zip(ts, frames):
        tr.update(poses, t)
    good = continuity_breaks(frames, pairs)
    # Shuffle IDs within one frame: the reference must notice.
    k = next(t for t, _, _ in pairs if len(frames[t + 1]) >= 2)
    a, b = frames[k + 1][0], frames[k + 1][1]
    a.track_id, b.track_id = b.track_id, a.track_id
    assert continuity_breaks(frames, pairs) > good


def test_smoothing_reduces_jitter_and_keeps_raw(make):
    rng = np.random.default_rng(0)
    cfg = TrackingConfig(smoothing=True)
    tr = make(cfg)
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


# -- the compiled tracker against the reference --------------------------------------------------
def copies(frames, blocks: bool = False):
    """Fresh poses of each frame: each its own (a caller's), or with ``blocks`` one PoseBlock per frame (the decoder's)."""
    if blocks:
        return [PoseBlock.pack(f) for f in frames]
    return [[Pose(p.keypoints.copy(), p.scores.copy(), p.score) for p in f] for f in frames]


def run_both(cfg, ts, frames):
    """Both trackers on the same frames (the reference on poses of their own, the compiled one on the decoder's
    blocks, as in the pipeline): per frame, every pose's track id, which poses were reported and their
    keypoints, and whether the reported ones are still their frame's block; and the trackers."""
    runs = []
    for engine in ("numpy", "numba"):
        tr, fr, log = make_tracker(cfg, engine), copies(frames, blocks=engine == "numba"), []
        for t, poses in zip(ts, fr):
            out = tr.update(poses, t)
            log.append(([p.track_id for p in poses], [next(i for i, q in enumerate(poses) if q is p) for p in out],
                        [p.keypoints.copy() for p in poses], PoseBlock.of(out) is not None))
        runs.append((tr, log))
    return runs


@pytest.mark.parametrize("kw", [{}, {"min_hits": 3}, {"predict_motion": False}, {"gate_torso": 0.0}, {"smoothing": True},
                                {"max_age": 2, "min_similarity": 0.5}])
@pytest.mark.parametrize("fps", [30.0, 10.0])
def test_compiled_tracker_gives_the_reference_ids(kw, fps):
    """Same IDs for every pose of every frame, the same poses reported, the same (smoothed) keypoints and the
    same track state, on crowds with misses, occlusion gaps and ghosts; and after time goes backwards."""
    kw = dict(kw)
    cfg = TrackingConfig(max_age=kw.pop("max_age", int(fps)), **kw)
    for seed in (1, 2):
        ts, frames, _ = crowd_scene(people=6, seconds=12, fps=fps, seed=seed)
        ts = ts + [t + 0.5 for t in ts[: len(ts) // 3]]  # a loop back in time: both start afresh, IDs go on
        frames = frames + frames[: len(frames) // 3]
        (ref, a), (fast, b) = run_both(cfg, ts, frames)
        assert type(ref) is Tracker and type(fast) is not Tracker
        assert [x[:2] for x in a] == [x[:2] for x in b]
        # What the pipeline publishes stays the decoder's block (encoded in one call), smoothed or not,
        # unless min_hits holds poses back; every frame with people here.
        assert [x[3] for x in b] == [len(x[1]) == len(x[0]) and len(x[0]) > 0 for x in b]
        assert any(x[3] for x in b) and (cfg.min_hits > 1) == (not all(x[3] for x in b if x[0]))
        for (_, _, ka, _), (_, _, kb, _) in zip(a, b):
            for x, y in zip(ka, kb):
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-3)
        assert [t.id for t in ref.tracks] == [t.id for t in fast.tracks]
        assert [(t.hits, t.missed) for t in ref.tracks] == [(t.hits, t.missed) for t in fast.tracks]
        for x, y in zip(ref.tracks, fast.tracks):
            np.testing.assert_allclose(x.keypoints, y.keypoints, atol=1e-3)
            np.testing.assert_array_equal(x.visible, y.visible)
            np.testing.assert_allclose(x.torso, y.torso, rtol=1e-5)
        sim_ref = ref.similarity(frames[5], ts[-1] + 0.03)
        np.testing.assert_allclose(fast.similarity(copies(frames[5:6])[0], ts[-1] + 0.03), sim_ref, atol=1e-5)


def test_tracker_engine_is_chosen_and_a_bad_choice_is_named(monkeypatch):
    monkeypatch.setenv("EDGEPOSE_TRACKER", "numpy")
    assert type(make_tracker()) is Tracker
    monkeypatch.setenv("EDGEPOSE_TRACKER", "numba")
    assert type(make_tracker()).__name__ == "CompiledTracker"
    monkeypatch.delenv("EDGEPOSE_TRACKER")
    assert type(make_tracker()).__name__ == "CompiledTracker"  # auto: numba when it loads
    with pytest.raises(ConfigError, match="auto, numba, numpy"):
        make_tracker(engine="fast")


def test_without_numba_the_reference_tracks_and_asking_for_numba_says_how_to_fix_it():
    code = NO_NUMBA + ("from edgepose.tracking import make_tracker, Tracker\nfrom edgepose.errors import ConfigError\n"
            "print(type(make_tracker()) is Tracker)\n"
            "try:\n    make_tracker(engine='numba')\nexcept ConfigError as e:\n    print(e)\n")
    r = run_py(code, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    first, rest = r.stdout.split("\n", 1)
    assert first == "True"
    assert "numba does not load" in rest and "EDGEPOSE_TRACKER=numpy" in rest
