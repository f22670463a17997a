"""Tracks keep their IDs through the shared street video (real PoseNet poses).

Criterion: the video has no identity labels, so we use the unambiguous-continuity
reference of ``edgepose.tracking.metrics``: a pose and the pose in the next
frame that are mutual nearest neighbours, within half a torso size, with any
other candidate at least 3x further away, are surely one person. The tracker
must give such pairs the same ID (we allow 1 % breaks: PoseNet sometimes
merges two people into one pose for a frame, which changes the "same" pose).
On top, the people who are in view all along (the pose with most frames)
must keep one ID, and the number of IDs must stay near the number of people.
"""

from __future__ import annotations

from collections import Counter

import pytest

from edgepose.tracking import Tracker, TrackingConfig
from edgepose.tracking.metrics import continuity_breaks, continuity_pairs
from tests.conftest import SHARED

MODEL = SHARED / "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite"
VIDEO = SHARED / "video/openpose_video.avi"


@pytest.fixture(scope="module")
def video_frames():
    cv2 = pytest.importorskip("cv2")
    from edgepose.model.posenet import load_posenet

    if not (MODEL.exists() and VIDEO.exists()):
        pytest.skip("shared model or video missing")
    model = load_posenet(str(MODEL), threads=2)
    cap = cv2.VideoCapture(str(VIDEO))
    fps = cap.get(cv2.CAP_PROP_FPS) or 50.0
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(model.estimate(img, max_poses=10, min_pose_score=0.25))
    assert len(frames) > 150
    return fps, frames


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1, 3])
def test_ids_are_stable_through_the_shared_video(video_frames, stride):
    fps, all_frames = video_frames
    frames = [[p.scaled(1, 1) for p in f] for f in all_frames[::stride]]  # fresh copies per run
    tr = Tracker(TrackingConfig(max_age=max(1, round(fps / stride))))
    for k, poses in enumerate(frames):
        tr.update(poses, k * stride / fps)
    pairs = continuity_pairs(frames)
    assert len(pairs) > 3 * len(frames) * 0.8  # several people per frame are unambiguous
    breaks = continuity_breaks(frames, pairs)
    assert breaks <= 0.01 * len(pairs), f"{breaks} of {len(pairs)} unambiguous continuations changed ID"
    confident = Counter(p.track_id for f in frames for p in f if p.score >= 0.5)
    # About 8 people are in clear view over the clip, plus passers-by at the back.
    assert len(confident) <= 25, confident
    longest = max(Counter(p.track_id for f in frames for p in f).values())
    assert longest >= 0.95 * len(frames)  # the woman in the middle is one track from start to end
