"""Video / image output: files re-open with the right frame count, size and content."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepose.draw import draw_poses
from edgepose.sinks.video import VideoSink, VideoSinkError, output_kind
from edgepose.types import FrameResult, Pose
from tests.conftest import SHARED

VIDEO = SHARED / "video" / "openpose_video.avi"
N = 40
SIZE = (640, 360)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The first N frames of the real clip at 640x360."""
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    for _ in range(N):
        ok, img = cap.read()
        assert ok
        out.append(cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA))
    cap.release()
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def read_all(path: Path) -> tuple[list[np.ndarray], float, int]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out, fps, count


@pytest.mark.parametrize("name, fourcc", [("out.mp4", "mp4v"), ("out.avi", "MJPG")])
def test_video_reopens_with_same_frames(tmp_path, frames, name, fourcc):
    path = tmp_path / name
    with VideoSink(path, fps=25, size=SIZE) as sink:
        assert sink.fourcc == fourcc and sink.kind == "video"
        for f in frames:
            sink.write(f)
    assert sink.frames_written == N
    got, fps, count = read_all(path)
    assert count == N and len(got) == N
    assert fps == pytest.approx(25)
    assert got[0].shape == (SIZE[1], SIZE[0], 3)
    # lossy codecs, but clearly the same pictures in the same order
    assert min(psnr(a, b) for a, b in zip(got, frames)) > 25
    assert psnr(got[0], frames[-1]) < min(psnr(a, b) for a, b in zip(got, frames))


def test_size_from_first_frame_and_resizing(tmp_path, frames):
    path = tmp_path / "auto.mp4"
    sink = VideoSink(path, fps=10)
    sink.write(frames[0])
    assert sink.size == SIZE
    sink.write(cv2.resize(frames[1], (320, 180)))  # wrong size: resized, not silently dropped
    sink.write(FrameResult(2, 0.2, [], SIZE[0], SIZE[1], image=frames[2]))
    assert sink.close() == 3 and sink.resized == 1
    got, _, count = read_all(path)
    assert count == 3 and len(got) == 3 and got[1].shape == (SIZE[1], SIZE[0], 3)


def test_drawn_frames_roundtrip(tmp_path, frames):
    kp = np.tile(np.array([[320.0, 180.0]], np.float32), (17, 1)) + np.arange(17, dtype=np.float32)[:, None] * 8
    pose = Pose(kp, np.full(17, 0.9), 0.9, track_id=1)
    path = tmp_path / "drawn.mp4"
    with VideoSink(path, 25, SIZE) as sink:
        for f in frames[:5]:
            sink.write(draw_poses(f, [pose], copy=True))
    got, _, _ = read_all(path)
    assert len(got) == 5
    # the drawing survived encoding: the annotated region differs from the raw frame
    assert np.abs(got[0][170:330, 310:470].astype(int) - frames[0][170:330, 310:470].astype(int)).mean() > 3


def test_single_image_holds_latest_frame(tmp_path, frames):
    path = tmp_path / "latest.png"
    with VideoSink(path) as sink:
        assert sink.kind == "image"
        for f in frames[:3]:
            sink.write(f)
    assert np.array_equal(cv2.imread(str(path)), frames[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.png"]  # no temp files left


def test_folder_of_images(tmp_path, frames):
    out = tmp_path / "shots"
    with VideoSink(str(out) + "/", image_ext="png") as sink:
        assert sink.kind == "folder"
        for f in frames[:4]:
            sink.write(f)
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(4)]
    assert all(np.array_equal(cv2.imread(str(p)), f) for p, f in zip(files, frames))
    existing = tmp_path / "existing"
    existing.mkdir()
    with VideoSink(existing) as sink:  # an existing folder, no trailing slash: jpg frames
        sink.write(frames[0])
    assert [p.name for p in existing.iterdir()] == ["frame_000000.jpg"]
    assert psnr(cv2.imread(str(existing / "frame_000000.jpg")), frames[0]) > 30


def test_missing_folder(tmp_path):
    with pytest.raises(VideoSinkError) as e:
        VideoSink(tmp_path / "nope" / "out.mp4", 25, SIZE)
    assert "does not exist" in e.value.problem and "mkdir -p" in e.value.fix
    with pytest.raises(VideoSinkError):
        VideoSink(tmp_path / "nope" / "deeper" / "", 25)


def test_codec_unavailable(tmp_path):
    with pytest.raises(VideoSinkError) as e:
        VideoSink(tmp_path / "out.mp4", 25, SIZE, fourcc="ZZZZ")
    assert "'ZZZZ'" in e.value.problem and "mp4v" in e.value.fix


def test_output_kinds(tmp_path):
    assert output_kind("a.MP4") == "video" and output_kind("a.jpeg") == "image"
    assert output_kind(tmp_path) == "folder" and output_kind("frames/") == "folder"
    with pytest.raises(VideoSinkError, match="extension"):
        output_kind("poses.jsonl")


def test_write_after_close_and_bad_dtype(tmp_path, frames):
    sink = VideoSink(tmp_path / "x.mp4", 25, SIZE)
    with pytest.raises(VideoSinkError, match="uint8"):
        sink.write(frames[0].astype(np.float32))
    sink.close()
    with pytest.raises(VideoSinkError, match="closed"):
        sink.write(frames[0])
