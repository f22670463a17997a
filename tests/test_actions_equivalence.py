"""The batched ActionEngine reports exactly the events of the per-person reference it replaced.

Every expected list here is recorded in the test by running ``tests/actions_reference.py`` (the engine,
rules and features as they were) on the same input: the seed clip decoded by the real model, crowds
replaying actions-9class clips, and synthetic scenes with the awkward cases (several people at once,
a repeated track ID, poses outside a block, untracked poses, people who leave, time going back).
Events are compared as whole dicts, confidences included, so any change of arithmetic shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepose.actions import ActionEngine, ActionsConfig
from edgepose.actions import dataset as ds
from edgepose.actions.classifier import ActionClassifier
from edgepose.actions.features import batch_features
from edgepose.actions.synthetic import crowd, lying, sequence, sitting, squatting, standing
from edgepose.geometry import body_centre, body_measures, torso_size
from edgepose.types import Pose
from tests.actions_reference import ReferenceActionEngine
from tests.actions_reference import batch_features as reference_features

from .conftest import SHARED, coral_model

VIDEO = SHARED / "video" / "openpose_video.avi"
SKELETONS = SHARED / "datasets/actions-9class/skeletons_info.txt"
FLOOR = 460.0


def copies(poses):
    """Fresh Pose objects (own arrays, not a block): each engine gets input nobody else has touched."""
    return [Pose(p.keypoints.copy(), p.scores.copy(), p.score, track_id=p.track_id) for p in poses]


def raw(e):
    """An event at full precision (to_dict rounds times and confidences), as a dict."""
    return {
        "track_id": e.track_id,
        "action": e.action,
        "kind": e.kind,
        "start": e.start,
        "end": e.end,
        "confidence": e.confidence,
        "count": e.count,
        "extra": e.extra,
    }


def events_of(engine, frames):
    out = []
    for t, poses in frames:
        poses = copies(poses)  # each engine gets its own poses: neither may see the other's writes
        out += [raw(e) for e in engine.update(poses, t)]
    return out + [raw(e) for e in engine.close()]


def both(frames, cfg=None, classifier=None):
    cfg = cfg or ActionsConfig()
    ref = events_of(ReferenceActionEngine(cfg, classifier=classifier), frames)
    new = events_of(ActionEngine(cfg, classifier=classifier), frames)
    return ref, new


@pytest.fixture(scope="module")
def seqs():
    if not SKELETONS.exists():
        pytest.skip("shared actions-9class dataset missing")
    return ds.load_skeletons(SKELETONS)


@pytest.fixture(scope="module")
def clip_frames():
    """The seed clip through the real model and tracker: ``(t, tracked poses)`` per frame, and the pipeline's events."""
    from edgepose.config import EdgeposeConfig
    from edgepose.pipeline import Pipeline
    from edgepose.sources import open_source

    if not VIDEO.exists():
        pytest.skip("shared video missing")
    cfg = EdgeposeConfig.model_validate({"model": {"path": str(coral_model("353_481")), "threads": 2}})
    pipe = Pipeline(cfg)
    frames, events = [], []
    with open_source(str(VIDEO), prefetch=0) as src:
        for r in pipe.run(src):
            frames.append((r.timestamp, copies(r.poses)))
            events += [raw(e) for e in r.events]
    return frames, events


class NumpyClassifier:
    """A stand-in for the int8 model without TensorFlow: a fixed random linear layer over the same features.

    The engines reach a model only through ``standardise`` and ``_run``; ``predict_windows`` is
    ActionClassifier's own, so the batched path under test is the real one.
    """

    classes = ["a", "b", "c", "d"]
    window, fps = 15, 10.0
    predict_windows = ActionClassifier.predict_windows

    def __init__(self):
        self.w = np.random.default_rng(3).normal(0, 0.05, (15 * 72, 4)).astype(np.float32)

    def standardise(self, feats):
        return feats

    def _run(self, x):
        return (x.reshape(1, -1) @ self.w)[0]


def test_seed_clip_same_events_as_the_reference(clip_frames):
    frames, pipeline_events = clip_frames
    assert sum(len(p) for _, p in frames) > 5 * len(frames)  # several people a frame
    ref, new = both(frames)
    assert ref, "the seed clip gives rule events (else this compares nothing)"
    assert new == ref
    # The pipeline itself (the engine fed the tracker's poses) reports them too.
    assert pipeline_events == ref


def test_seed_clip_with_a_classifier_same_events(clip_frames):
    frames, _ = clip_frames
    ref, new = both(frames, ActionsConfig(model_min_confidence=0.3, model_smoothing=1), classifier=NumpyClassifier())
    assert any(e["extra"].get("source") == "model" for e in ref)
    assert new == ref


@pytest.mark.parametrize("people", [1, 8])
def test_dataset_crowd_same_events(seqs, people):
    frames = crowd(seqs, people, seconds=25.0)
    ref, new = both(frames)
    assert {e["action"] for e in ref} >= ({"sitting"} if people == 1 else {"standing", "sitting", "squat", "waving"})
    assert new == ref


def test_dataset_crowd_with_a_classifier_same_events(seqs):
    frames = crowd(seqs, 8, seconds=15.0, seed=1)
    cfg = ActionsConfig(model_min_confidence=0.3, model_smoothing=2, model_stride=1)
    ref, new = both(frames, cfg, classifier=NumpyClassifier())
    assert len({e["track_id"] for e in ref if e["extra"].get("source") == "model"}) >= 4
    assert new == ref


def scene():
    """Three people: one falls, one squats, one waves then raises both hands; frames at 30 fps."""
    a, b, c = standing(FLOOR, x=200.0), standing(FLOOR, x=600.0, size=60.0), standing(FLOOR, x=1000.0, size=100.0)
    fall = sequence([(0, a), (1.0, a), (1.6, lying(a, FLOOR)), (6.0, lying(a, FLOOR))], noise_px=1.0, seed=1)
    kf = [(0, b)]
    for i in range(3):
        t = 0.5 + 1.6 * i
        kf += [(t, b), (t + 0.6, squatting(b, FLOOR)), (t + 0.8, squatting(b, FLOOR))]
    kf += [(5.5, b), (6.0, sitting(b, FLOOR))]
    squat = sequence(kf, noise_px=1.0, seed=2)
    wave = [(0, c), (0.5, c)] + [
        (0.8 + 0.3 * i, c.with_(l_arm=120.0 + (20 if i % 2 else -20), l_elbow=30.0)) for i in range(8)
    ]
    wave += [(3.5, c.with_(l_arm=170.0, r_arm=170.0)), (6.0, c.with_(l_arm=170.0, r_arm=170.0))]
    waves = sequence(wave, noise_px=1.0, seed=3)
    frames = []
    for (t, p1), (_, p2), (_, p3) in zip(fall, squat, waves):
        p1.track_id, p2.track_id, p3.track_id = 1, 2, 3
        frames.append((t, [p1, p2, p3]))
    return frames


def test_synthetic_scene_same_events():
    frames = scene()
    ref, new = both(frames)
    assert {e["action"] for e in ref} >= {"fall", "squat", "waving", "hands_raised", "lying", "standing"}
    assert new == ref


def test_awkward_inputs_same_events():
    frames = scene()
    odd = []
    for k, (t, poses) in enumerate(frames):
        poses = copies(poses)
        if k % 7 == 0:
            poses.append(Pose(poses[0].keypoints + 5.0, poses[0].scores.copy(), 0.5))  # untracked: ignored
        if 40 <= k < 60:
            poses.append(Pose(poses[1].keypoints + 3.0, poses[1].scores.copy(), 0.5, track_id=2))  # ID twice in a frame
        if 60 <= k < 150:
            poses = [p for p in poses if p.track_id != 3]  # person 3 leaves for 3 s: forgotten, then new
        if k % 11 == 5:
            poses[0].scores[:] = 0.05  # nobody visible in one frame of person 1
        odd.append((t, poses))
    # Time goes back once (a looping file): the rules' history no longer runs in order.
    odd += [(t - 2.0 + odd[-1][0] / 2, poses) for t, poses in odd[:90]]
    ref, new = both(odd)
    assert len(ref) > 10
    assert new == ref
    # Rules switched off and on again, and a config at its edges.
    cfg = ActionsConfig(rules=["fall", "squat"], fall_max_drop_s=0.5, posture_min_s=0.0, hands_raised_min_s=0.0)
    ref, new = both(frames, cfg)
    assert new == ref and any(e["action"] == "fall" for e in ref)
    assert both(frames, ActionsConfig(rules=[]))[1] == []


def test_features_are_the_reference_features_bit_for_bit(seqs):
    kp, vis, _, _ = ds.make_windows(seqs, 15, stride=9)
    vis = vis.copy()
    vis[::5, :, 11:] = False  # legs missed in some windows
    vis[::17] = False  # and a few windows with nobody seen
    ref = reference_features(kp, vis)
    assert np.array_equal(batch_features(kp, vis), ref)
    # The engine hands over the frames' torso sizes and centres it measured for the rules: the same features.
    _, _, sizes, centres = body_measures(kp, vis)
    assert np.array_equal(batch_features(kp, vis, sizes, centres), ref)
    assert np.array_equal(sizes, torso_size(kp, vis), equal_nan=True) and np.isnan(sizes).any()
    assert np.array_equal(centres, body_centre(kp, vis), equal_nan=True)


def test_trained_model_same_events(seqs, tmp_path):
    """The real int8 model (trained here briefly): predict_windows gives predict's probabilities exactly."""
    pytest.importorskip("tensorflow")
    from edgepose.cli import main as cli

    out = Path(tmp_path) / "actions.tflite"
    assert cli(["actions", "train", "--skeletons", str(SKELETONS), "--epochs", "1", "--out", str(out)]) == 0
    clf = ActionClassifier(out)
    kp, vis, _, _ = ds.make_windows(seqs, 15, stride=40)
    assert np.array_equal(clf.predict_windows(kp, vis), np.stack([clf.predict(k, v) for k, v in zip(kp, vis)]))
    frames = crowd(seqs, 8, seconds=12.0, seed=2)
    ref, new = both(frames, ActionsConfig(model_min_confidence=0.3, model_smoothing=1), classifier=clf)
    assert any(e["extra"].get("source") == "model" for e in ref)
    assert new == ref


def test_a_fall_rule_with_no_recent_position_skips_the_frame():
    """The reference's min() over an empty window raised; the batched rule has nothing to measure and goes on."""
    s = standing(FLOOR)
    frames = []
    for k, (t, p) in enumerate(sequence([(0, s), (3.0, s)], fps=10.0)):
        p.track_id = 1
        if k == 20:
            p.scores[:] = 0.05  # nothing seen this frame: no position for the fall rule
        frames.append((t, [p]))
    cfg = ActionsConfig(fall_max_drop_s=0.05)  # shorter than the 0.1 s between frames
    with pytest.raises(ValueError):
        events_of(ReferenceActionEngine(cfg), frames)
    assert [(e["action"], e["kind"]) for e in events_of(ActionEngine(cfg), frames)] == [
        ("standing", "start"),
        ("standing", "end"),
    ]
