"""PoseBlock: the decoder's poses of one frame are rows of one set of arrays, kept in step with the Pose objects."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.model.posenet import load_posenet
from edgepose.types import NO_TRACK_ID, NUM_KEYPOINTS, Pose, PoseBlock

from .conftest import SHARED, coral_model

MODEL = coral_model("481_641")
IMAGE = SHARED / "images" / "test_couple.jpg"


@pytest.fixture(scope="module")
def decoded():
    model = load_posenet(MODEL)
    heads, transform = model.infer(cv2.imread(str(IMAGE)))
    return heads, transform, model


def block_poses(n: int = 3, seed: int = 0) -> list[Pose]:
    rng = np.random.default_rng(seed)
    return PoseBlock.poses(rng.uniform(0, 600, (n, NUM_KEYPOINTS, 2)), rng.uniform(0, 1, (n, NUM_KEYPOINTS)), rng.uniform(0, 1, n))


def test_the_decoders_poses_are_one_blocks_rows(decoded):
    heads, transform, model = decoded
    for mode in ("multi", "single"):
        poses = model.decode(heads, transform, mode=mode)
        assert poses, mode
        block = PoseBlock.of(poses)
        assert block is not None and block.keypoints.shape == (len(poses), NUM_KEYPOINTS, 2)
        for i, p in enumerate(poses):
            assert np.shares_memory(p.keypoints, block.keypoints) and np.shares_memory(p.scores, block.scores)
            assert p.keypoints.dtype == np.float32 and p.keypoints.flags.c_contiguous and p.scores.shape == (NUM_KEYPOINTS,)
            assert np.array_equal(p.keypoints, block.keypoints[i]) and p.score == block.score[i] and type(p.score) is float
            assert p.track_id is None and block.ids[i] == NO_TRACK_ID


def test_score_and_track_id_write_through():
    poses = block_poses()
    block = PoseBlock.of(poses)
    poses[1].score = 0.25
    poses[1].track_id = 7
    poses[2].track_id = np.int64(-3)
    assert block.score.tolist()[1] == 0.25 and block.ids.tolist() == [NO_TRACK_ID, 7, -3]
    poses[1].track_id = None
    assert block.ids[1] == NO_TRACK_ID and poses[1].track_id is None
    assert PoseBlock.of(poses) is block


@pytest.mark.parametrize("value", [NO_TRACK_ID, 2**63, -(2**70), 1.5, "a", True])
def test_an_id_the_int64_array_cannot_hold_takes_the_frame_off_the_block(value):
    """The pose keeps the id as given; the encoders then write the frame person by person, as Python does."""
    poses = block_poses()
    poses[0].track_id = value
    assert poses[0].track_id is value or poses[0].track_id == value
    assert PoseBlock.of(poses) is None


def test_new_arrays_take_a_pose_out_of_its_block_in_place_writes_do_not():
    poses = block_poses()
    block = PoseBlock.of(poses)
    poses[0].keypoints += 1.0  # in place: the block's row
    poses[0].scores[3] = 0.5
    assert PoseBlock.of(poses) is block and block.keypoints[0, 0, 0] == poses[0].keypoints[0, 0]
    assert block.scores[0, 3] == 0.5
    before = block.keypoints[1].copy()
    poses[1].keypoints = np.zeros((NUM_KEYPOINTS, 2), np.float64)  # converted as at construction, and its own
    assert poses[1].keypoints.dtype == np.float32 and not poses[1].keypoints.any()
    assert not np.shares_memory(poses[1].keypoints, block.keypoints) and np.array_equal(block.keypoints[1], before)
    assert PoseBlock.of(poses) is None
    poses = block_poses()
    poses[2].scores = np.ones(NUM_KEYPOINTS)
    assert PoseBlock.of(poses) is None


def test_only_all_rows_in_order_are_the_block():
    poses = block_poses(4)
    assert PoseBlock.of(list(poses)) is PoseBlock.of(tuple(poses)) is not None
    assert PoseBlock.of(poses[:3]) is None and PoseBlock.of(poses[::-1]) is None and PoseBlock.of([]) is None
    assert PoseBlock.of(poses[:1] + block_poses(3, seed=1)) is None
    standalone = [Pose(p.keypoints.copy(), p.scores.copy(), p.score) for p in poses]
    assert PoseBlock.of(standalone) is None
