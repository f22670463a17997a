"""Training data and features: the actions-9class loader, JSONL + label files, invariant features, grouped folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepose.actions import dataset as ds
from edgepose.actions.features import FEATURES_PER_FRAME, batch_features, window_features
from edgepose.actions.synthetic import sequence, standing
from edgepose.errors import EdgeposeError
from edgepose.types import KEYPOINT_INDEX, FrameResult
from edgepose_convert.actions.train import augment, grouped_folds
from tests.conftest import SHARED

SKELETONS = SHARED / "datasets/actions-9class/skeletons_info.txt"
needs_data = pytest.mark.skipif(not SKELETONS.exists(), reason="shared actions-9class dataset missing")


@needs_data
def test_skeletons_load_as_clips_grouped_by_video():
    seqs = ds.load_skeletons(SKELETONS)
    assert len(seqs) == 75
    assert sum(len(s.keypoints) for s in seqs) == 11202
    assert {s.label for s in seqs} == {"stand", "walk", "run", "jump", "sit", "squat", "kick", "punch", "wave"}
    assert len({s.group for s in seqs}) == 24
    # First row of the file: OpenPose right shoulder (2) = (377, 156), left shoulder (5) = (334, 122),
    # right ear (16) = (362, 116), left ear (17) = (344, 116); right elbow (3), right wrist (4), left eye (15) are 0,0.
    s0 = seqs[0]
    np.testing.assert_allclose(s0.keypoints[0, KEYPOINT_INDEX["right_shoulder"]], [377, 156])
    np.testing.assert_allclose(s0.keypoints[0, KEYPOINT_INDEX["left_shoulder"]], [334, 122])
    np.testing.assert_allclose(s0.keypoints[0, KEYPOINT_INDEX["right_ear"]], [362, 116])
    np.testing.assert_allclose(s0.keypoints[0, KEYPOINT_INDEX["left_ear"]], [344, 116])
    np.testing.assert_allclose(s0.keypoints[0, KEYPOINT_INDEX["left_ankle"]], [326, 327])
    for part in ("right_elbow", "right_wrist", "left_eye"):
        assert not s0.visible[0, KEYPOINT_INDEX[part]]
    assert s0.visible[0].sum() == 14


def test_bad_skeleton_file_is_a_clear_error(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("{not json")
    with pytest.raises(EdgeposeError, match="not a JSON list"):
        ds.load_skeletons(p)
    with pytest.raises(EdgeposeError, match="does not exist"):
        ds.load_skeletons(tmp_path / "missing.txt")


def test_features_are_invariant_to_position_and_distance():
    rng = np.random.default_rng(0)
    f = standing(460.0)
    kf = [(0, f), (0.7, f.with_(hip_flex=60, knee_flex=90, l_arm=90)), (1.4, f)]
    seq = sequence(kf, 10.0, noise_px=1.0)
    kp = np.stack([p.keypoints for _, p in seq])
    vis = rng.random(kp.shape[:2]) > 0.1
    a = window_features(kp, vis)
    b = window_features(kp * 2.5 + np.array([300.0, -80.0], np.float32), vis)
    assert a.shape == (len(seq), FEATURES_PER_FRAME)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.isfinite(a).all()
    # Batch form = single form.
    np.testing.assert_allclose(batch_features(np.stack([kp, kp]), np.stack([vis, vis]))[1], a, atol=1e-6)
    # Nothing visible: zeros, not nan.
    assert not window_features(kp, np.zeros_like(vis)).any()


def test_augmentation_changes_geometry_but_keeps_shapes():
    seq = sequence([(0, standing(460.0)), (1.4, standing(460.0).with_(l_arm=150))], 10.0)
    kp = np.stack([p.keypoints for _, p in seq])[None].repeat(8, 0)
    vis = np.ones(kp.shape[:3], bool)
    ak, av = augment(kp, vis, np.random.default_rng(0))
    assert ak.shape == kp.shape and av.shape == vis.shape
    assert not np.allclose(ak, kp)
    assert 0.85 < av.mean() < 1.0  # some joints dropped


def test_grouped_folds_never_share_a_video():
    labels = [c for c in "aabbccddee" for _ in range(10)]
    groups = [f"v{i // 5}" for i in range(100)]
    folds = grouped_folds(labels, groups, 5)
    assert len(folds) == 5
    for tr, te in folds:
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(100))
    with pytest.raises(EdgeposeError, match="source videos"):
        grouped_folds(labels[:10], groups[:10], 5)


def write_recording(path: Path, fps: float = 30.0) -> None:
    """A JSONL recording in FrameResult.to_dict() form: track 4 waves an arm, track 9 stands still."""
    s = standing(460.0, x=300.0)
    wave = [(0, s)] + [(0.3 * (i + 1), s.with_(l_arm=120 + (20 if i % 2 else -20), l_elbow=30)) for i in range(12)]
    still = sequence([(0, standing(460.0, x=900.0)), (3.9, standing(460.0, x=900.0))], fps)
    with path.open("w") as fh:
        for (t, p), (_, q) in zip(sequence(wave, fps), still):
            p.track_id, q.track_id = 4, 9
            fr = FrameResult(index=int(round(t * fps)), timestamp=t, poses=[p, q], width=1280, height=720)
            fh.write(json.dumps(fr.to_dict()) + "\n")


def test_jsonl_recordings_with_a_label_file(tmp_path):
    write_recording(tmp_path / "rec.jsonl")
    (tmp_path / "labels.csv").write_text(
        "# who did what\nfile,track_id,start,end,label\nrec.jsonl,4,0.5,3.5,wave\nrec.jsonl,9,0,3.6,stand\n"
    )
    seqs = ds.load_labelled_recordings(tmp_path / "labels.csv", fps=10.0)
    assert [s.label for s in seqs] == ["wave", "stand"]
    assert len(seqs[0].keypoints) == 31  # 0.5..3.5 s at 10 fps
    assert seqs[0].group == "rec.jsonl"
    # The standing person's x stays near 900: the right track was cut.
    assert abs(np.median(seqs[1].keypoints[..., 0]) - 900) < 50
    kp, vis, labels, groups = ds.make_windows(seqs, 15)
    assert kp.shape == (17 + 23, 15, 17, 2) and labels.count("wave") == 17


@pytest.mark.parametrize(
    "content,match",
    [
        ("file,track,start,end,label\n", "columns"),
        ("file,track_id,start,end,label\nrec.jsonl,4,abc,3,wave\n", "seconds"),
        ("file,track_id,start,end,label\nrec.jsonl,4,3,1,wave\n", "end > start"),
        ("file,track_id,start,end,label\nrec.jsonl,77,0,3,wave\n", "no frames of track 77"),
        ("file,track_id,start,end,label\nnope.jsonl,4,0,3,wave\n", "does not exist"),
    ],
)
def test_bad_label_files_name_the_problem(tmp_path, content, match):
    write_recording(tmp_path / "rec.jsonl")
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(EdgeposeError, match=match):
        ds.load_labelled_recordings(tmp_path / "labels.csv")


def test_resample_takes_the_newest_frame_at_each_tick():
    ts = np.array([0.0, 0.03, 0.07, 0.1, 0.13, 0.2])
    kp = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 17, 2), np.float32)
    vis = np.ones((6, 17), bool)
    rk, rv = ds.resample(ts, kp, vis, 10.0)
    assert rk[:, 0, 0].tolist() == [0, 3, 5]
    rk, rv = ds.resample(ts, kp, vis, 10.0, t0=-0.1, t1=0.2)
    assert not rv[0].any() and rk[1:, 0, 0].tolist() == [0, 3, 5]
