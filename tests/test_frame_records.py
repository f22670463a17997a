"""One reader of JSONL frame records: FrameResult.from_dict inverts to_dict, every consumer reads through it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepose.errors import SourceError
from edgepose.service.replay import read_records, replay
from edgepose.sinks.jsonl import JsonlSink, read_frame_records
from edgepose.types import KEYPOINT_NAMES, ActionEvent, FrameResult, Pose


def _frame(i: int) -> FrameResult:
    rng = np.random.default_rng(i)
    poses = [Pose(rng.uniform(0, 600, (17, 2)).astype(np.float32), rng.uniform(0, 1, 17).astype(np.float32), 0.7, track_id=3)]
    events = [ActionEvent(3, "squat", "count", 1.5, None, 0.9, count=2, extra={"depth": 0.4})] if i == 1 else []
    return FrameResult(i, 10.0 + i / 30, poses, 640, 480, events=events, extra={"camera_pose": {"position": [1.0, 2.0, 0.5]}})


def test_from_dict_inverts_to_dict():
    for i in range(3):
        fr = _frame(i)
        back = FrameResult.from_dict(json.loads(json.dumps(fr.to_dict())))
        assert back.to_dict() == fr.to_dict()
        assert back.events == fr.events and back.extra == fr.extra
        assert np.abs(back.poses[0].keypoints - fr.poses[0].keypoints).max() <= 0.05


def test_the_sink_and_both_readers_agree(tmp_path):
    path = tmp_path / "rec.jsonl"
    with JsonlSink(path) as sink:
        for i in range(3):
            sink.write(_frame(i))
    frames = list(read_frame_records(path))
    assert [f.index for f in frames] == [0, 1, 2] and frames[1].events[0].count == 2
    assert read_records(path) == [f.to_dict() for f in frames]
    replayed = list(replay(path, live=False))
    assert [r.to_dict() for r in replayed] == [f.to_dict() for f in frames]


def test_a_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "rec.jsonl"
    good = _frame(0).to_dict()
    path.write_text(json.dumps(good) + "\n" + json.dumps({"frame": 1, "ts": 0.1}) + "\n")
    with pytest.raises(SourceError, match=r"rec.jsonl:2 is not a frame record \(it lacks width, height\)"):
        read_records(path)
    bad_pose = dict(good, people=[{"score": 1.0, "keypoints": {KEYPOINT_NAMES[0]: [1, 2, 3]}}])
    path.write_text(json.dumps(bad_pose) + "\n")
    with pytest.raises(Exception, match="frame 0 is not a frame record"):
        list(read_frame_records(path))
