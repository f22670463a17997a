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
    poses = [
        Pose(rng.uniform(0, 600, (17, 2)).astype(np.float32), rng.uniform(0, 1, 17).astype(np.float32), 0.7, track_id=3)
    ]
    events = [ActionEvent(3, "squat", "count", 1.5, None, 0.9, count=2, extra={"depth": 0.4})] if i == 1 else []
    return FrameResult(
        i, 10.0 + i / 30, poses, 640, 480, events=events, extra={"camera_pose": {"position": [1.0, 2.0, 0.5]}}
    )


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


def test_each_line_holds_to_dicts_values(tmp_path):
    """The sink writes with the MQTT payload's writers: every line parses to exactly FrameResult.to_dict(), events, camera pose and untracked people included,
    and is strict JSON: a NaN keypoint is written 0 (to_dict keeps NaN, which json.dumps writes as NaN)."""
    frames = [_frame(i) for i in range(3)]
    odd = Pose(np.full((17, 2), np.nan, np.float32), np.linspace(0, 1, 17), 0.12345, None)
    frames.append(FrameResult(3, -0.00001, [odd, frames[0].poses[0]], 1920, 1080))
    frames.append(FrameResult(4, 1_700_000_000.00005, [], 1920, 1080, extra={"frame": 99}))  # extra overriding a key
    path = tmp_path / "rec.jsonl"
    with JsonlSink(path) as sink:
        for fr in frames:
            sink.write(fr)

    def no_nan(x):
        if isinstance(x, float):
            return 0.0 if x != x else x
        if isinstance(x, list):
            return [no_nan(v) for v in x]
        return {k: no_nan(v) for k, v in x.items()} if isinstance(x, dict) else x

    def strict(name):
        raise AssertionError(f"{name} is not JSON")

    lines = path.read_text().splitlines()
    assert [json.loads(ln, parse_constant=strict) for ln in lines] == [
        no_nan(json.loads(json.dumps(fr.to_dict()))) for fr in frames
    ]
    assert list(json.loads(lines[1])) == ["v", "frame", "ts", "width", "height", "people", "events", "camera_pose"]


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
