"""The pipeline on the real model and video: stages, timings, prefetch, actions closed at the end."""

from __future__ import annotations

from collections import Counter

import pytest

from edgepose.config import EdgeposeConfig
from edgepose.errors import ModelError
from edgepose.pipeline import Pipeline
from edgepose.sources import open_source

from .conftest import SHARED, coral_model

VIDEO = SHARED / "video" / "openpose_video.avi"


def config(**sections) -> EdgeposeConfig:
    data = {"model": {"path": str(coral_model("353_481")), "threads": 2}}
    data.update(sections)
    return EdgeposeConfig.model_validate(data)


def test_every_frame_in_order_with_stage_timings():
    pipe = Pipeline(config(actions={"enabled": False}))
    with open_source(str(VIDEO), prefetch=0) as src:
        results = list(pipe.run(src, max_frames=12))
    assert [r.index for r in results] == list(range(12))
    assert all((r.width, r.height) == (1280, 720) for r in results)
    assert all({"pre", "invoke", "decode", "track"} <= set(r.timings) for r in results)
    assert sum(len(r.poses) for r in results) >= 12 * 2
    assert all(p.track_id is not None for r in results for p in r.poses)


def test_open_actions_end_when_the_file_ends():
    pipe = Pipeline(config())
    with open_source(str(VIDEO), prefetch=0) as src:
        results = list(pipe.run(src, max_frames=60))
    # Every frame's people reach the sinks tracked.
    assert all(r.poses and all(p.track_id is not None and p.track_id > 0 for p in r.poses) for r in results)
    events = [e for r in results for e in r.events]
    starts = Counter((e.track_id, e.action) for e in events if e.kind == "start")
    ends = Counter((e.track_id, e.action) for e in events if e.kind == "end")
    assert starts, "the clip has people standing: posture events start"
    assert starts == ends, "every action that started has ended by the last frame"
    assert any(e.kind == "end" for e in results[-1].events)


def test_main_model_must_be_a_keypoint_model():
    class NotPoseNet:
        model_type = "relocalization"

    with pytest.raises(ModelError, match="keypoint model"):
        Pipeline(config(), model=NotPoseNet())


def _prefetch_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if "prefetch" in t.name]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_one_prefetch_thread_reads_and_preprocesses(prefetch):
    """A file opened with or without the source's prefetch: one thread reads and pre-processes ahead."""
    pipe = Pipeline(config(actions={"enabled": False}))
    seen = []
    with open_source(str(VIDEO), prefetch=prefetch) as src:
        for res in pipe.run(src, max_frames=8):
            seen.append(len(_prefetch_threads()))
            assert res.timings["pre"] > 0 and "read" in res.timings
    assert seen and all(n == 1 for n in seen), seen
    assert _prefetch_threads() == []  # none left running once the source is closed


def test_results_match_the_serial_path():
    """Overlapping the stages changes nothing in the results: the same poses as one frame at a time."""
    cfg = config(actions={"enabled": False}, tracking={"enabled": False})
    pipe = Pipeline(cfg)
    with open_source(str(VIDEO), prefetch=0) as src:
        staged = list(pipe.run(src, max_frames=6))
    with open_source(str(VIDEO), prefetch=0) as src:
        serial = [pipe.process(f) for f, _ in zip(src, range(6))]
    assert [r.index for r in staged] == [r.index for r in serial]
    for a, b in zip(staged, serial):
        assert len(a.poses) == len(b.poses)
        for p, q in zip(a.poses, b.poses):
            assert (p.keypoints == q.keypoints).all() and (p.scores == q.scores).all()


def test_stopping_early_leaves_no_inference_thread():
    import threading

    pipe = Pipeline(config(actions={"enabled": False}))
    with open_source(str(VIDEO)) as src:
        it = pipe.run(src)
        next(it)
        it.close()
    assert not [t for t in threading.enumerate() if t.name == "edgepose-infer"]
