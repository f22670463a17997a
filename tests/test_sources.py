"""Files, images, cameras that do not exist, and the background readers (real video and images)."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pydantic
import pytest

from edgepose.errors import SourceError
from edgepose.redact import redact_url
from edgepose.sources import (
    FrameSource,
    LatestFrameReader,
    PrefetchReader,
    SourceConfig,
    VideoFileSource,
    open_source,
    resolve,
)
from edgepose.sources.images import natural_key
from edgepose.sources.opencv import ffmpeg_stream_options
from edgepose.types import Frame
from tests.conftest import SHARED

VIDEO = SHARED / "video" / "openpose_video.avi"
COUPLE = SHARED / "images" / "test_couple.jpg"
COCO = SHARED / "images" / "coco"


def digest(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def video_digests() -> list[str]:
    """Every frame of the clip decoded directly with OpenCV (the reference)."""
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(digest(img))
    cap.release()
    assert len(out) == 205
    return out


# -- resolving specs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, kind",
    [
        (0, "camera"),
        ("0", "camera"),
        ("/dev/video2", "camera"),
        ("picamera2", "picamera2"),
        ("picamera2:1", "picamera2"),
        ("rtsp://user:pw@10.0.0.5:554/stream1", "stream"),
        ("http://cam.local/video.mjpg", "stream"),
        (str(COUPLE), "image"),
        (str(COCO), "folder"),
        (str(COCO / "*.jpg"), "glob"),
        (str(VIDEO), "video"),
        ("clip.MP4", "video"),
        ("not-yet-there/", "folder"),
    ],
)
def test_resolve_kinds(spec, kind):
    assert resolve(spec)[0] == kind


def test_redact_and_ffmpeg_options():
    assert redact_url("rtsp://admin:s3cret@10.0.0.5/x") == "rtsp://admin:***@10.0.0.5/x"
    assert redact_url("http://host/x") == "http://host/x"
    assert ffmpeg_stream_options("rtsp://h/x", "udp").startswith("rtsp_transport;udp|")
    assert "fflags;nobuffer" in ffmpeg_stream_options("rtsp://h/x")
    # nobuffer loses frames of files served over HTTP (see test_http_stream_* in test_sources_live.py)
    assert "rtsp_transport" not in ffmpeg_stream_options("http://h/x")
    assert "nobuffer" not in ffmpeg_stream_options("http://h/x")


def test_natural_sort():
    names = [Path(n) for n in ["img10.jpg", "img2.jpg", "IMG1.jpg", "img2b.jpg"]]
    assert [p.name for p in sorted(names, key=natural_key)] == ["IMG1.jpg", "img2.jpg", "img2b.jpg", "img10.jpg"]


# -- video files ------------------------------------------------------------------


def test_video_file_frames_match_opencv(video_digests):
    with open_source(str(VIDEO), prefetch=0) as src:
        assert isinstance(src, VideoFileSource)
        assert src.fps == 50.0 and src.frame_count == 205 and src.is_live is False
        assert "1280x720" in src.description
        frames = list(src)
    assert [f.index for f in frames] == list(range(205))
    # media time, not wall clock
    assert [f.timestamp for f in frames[:3]] == [0.0, 0.02, 0.04]
    assert frames[-1].timestamp == pytest.approx(204 / 50)
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (720, 1280, 3)
    assert [digest(f.image) for f in frames] == video_digests


def test_prefetch_reader_yields_identical_frames(video_digests):
    with open_source(str(VIDEO), prefetch=3) as src:
        assert isinstance(src, PrefetchReader)
        assert src.fps == 50.0 and src.frame_count == 205
        got = [(f.index, f.timestamp, digest(f.image)) for f in src]
        assert src.read() is None  # stays finished
    assert [g[0] for g in got] == list(range(205))
    assert [g[2] for g in got] == video_digests


def test_prefetch_close_early_stops_thread():
    src = open_source(str(VIDEO), prefetch=2)
    first = src.read()
    assert first is not None and first.index == 0
    src.close()
    assert not src._thread.is_alive()
    assert src.read() is None


def test_video_loop_keeps_time_increasing(tmp_path, video_digests):
    cut = tmp_path / "cut.avi"  # a short clip keeps the test fast
    data = VIDEO.read_bytes()
    cut.write_bytes(data[: len(data) // 5])
    with open_source(str(cut), prefetch=0) as src:
        n = sum(1 for _ in src)
    with open_source(str(cut), loop=True, prefetch=0) as src:
        assert src.frame_count is None
        frames = [f for _, f in zip(range(n + 10), src)]
    assert [f.index for f in frames] == list(range(n + 10))
    ts = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert ts[n] == pytest.approx(n / 50)
    assert digest(frames[n].image) == video_digests[0]


def test_missing_video_names_problem_and_fix(tmp_path):
    with pytest.raises(SourceError) as e:
        open_source(str(tmp_path / "nope.mp4"))
    assert "does not exist" in e.value.problem and "nope.mp4" in e.value.problem
    assert e.value.fix


def test_corrupt_video(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(SourceError) as e:
        open_source(str(bad))
    assert "broken.mp4" in str(e.value) and "ffmpeg" in e.value.fix


def test_truncated_video_ends_early_without_error(tmp_path):
    data = VIDEO.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])
    with open_source(str(cut), prefetch=0) as src:
        n = sum(1 for _ in src)
    assert 10 < n < 205


# -- images -------------------------------------------------------------------------


def test_single_image():
    with open_source(str(COUPLE)) as src:
        frames = list(src)
        assert src.frame_count == 1 and not src.is_live
    assert len(frames) == 1
    assert frames[0].timestamp == 0.0
    assert np.array_equal(frames[0].image, cv2.imread(str(COUPLE)))


def test_unreadable_single_image(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(SourceError) as e:
        open_source(str(bad))
    assert "photo.jpg" in e.value.problem and e.value.fix


def test_folder_sorted_and_timed():
    expected = sorted(p.name for p in COCO.glob("*.jpg"))
    with open_source(str(COCO), fps=10.0, prefetch=0) as src:
        assert src.frame_count == len(expected) == 20
        names, ts = [], []
        for f in src:
            names.append(src.current_path.name)
            ts.append(f.timestamp)
            assert f.image.ndim == 3 and f.image.dtype == np.uint8
    assert names == expected
    assert ts[:3] == pytest.approx([0.0, 0.1, 0.2])


def test_folder_paths_through_prefetch():
    expected = sorted(COCO.glob("*.jpg"))
    with open_source(str(COCO), prefetch=3) as src:  # attributes of the image source pass through the reader
        assert isinstance(src, PrefetchReader) and src.skipped == []
        got = [src.path_of(f.index) for f in src]
    assert [p.name for p in got] == [p.name for p in expected]


def test_folder_skips_non_images_and_unreadable(tmp_path, caplog):
    srcs = sorted(COCO.glob("*.jpg"))[:3]
    for i, p in enumerate(srcs):
        (tmp_path / f"shot{i + 1}.jpg").symlink_to(p)
    (tmp_path / "shot10.jpg").symlink_to(COUPLE)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "shot5.png").write_bytes(b"broken")
    with open_source(str(tmp_path), prefetch=0) as src:
        frames = list(src)
        assert [p.name for p in src.skipped] == ["shot5.png"]
    assert len(frames) == 4
    assert np.array_equal(frames[-1].image, cv2.imread(str(COUPLE)))  # shot10 sorts last
    assert "shot5.png" in caplog.text


def test_empty_folder_and_folder_without_images(tmp_path):
    with pytest.raises(SourceError) as e:
        open_source(str(tmp_path))
    assert "no images" in e.value.problem
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(SourceError) as e:
        open_source(str(tmp_path))
    assert "1 other files" in e.value.problem


def test_folder_of_only_corrupt_images(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    with open_source(str(tmp_path), prefetch=0) as src, pytest.raises(SourceError):
        src.read()


def test_glob():
    pattern = str(COCO / "COCO_val2014_0000000003*.jpg")
    expected = sorted(Path(p).name for p in __import__("glob").glob(pattern))
    assert len(expected) >= 3
    with open_source(pattern, prefetch=0) as src:
        got = [src.current_path.name for _ in src]
    assert got == expected
    with pytest.raises(SourceError) as e:
        open_source(str(COCO / "*.png"))
    assert "matches no image" in e.value.problem


def test_folder_loop(tmp_path):
    for i, p in enumerate(sorted(COCO.glob("*.jpg"))[:2]):
        (tmp_path / f"{i}.jpg").symlink_to(p)
    with open_source(str(tmp_path), loop=True, prefetch=0) as src:
        frames = [f for _, f in zip(range(5), src)]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert np.array_equal(frames[0].image, frames[2].image)


# -- cameras that are not there ---------------------------------------------------


@pytest.mark.parametrize("spec", [7, "7", "/dev/video9"])
def test_camera_that_does_not_open(spec):
    t = time.monotonic()
    with pytest.raises(SourceError) as e:
        open_source(spec)  # reconnect on, but the first open fails fast
    assert time.monotonic() - t < 5
    assert "could not be opened" in e.value.problem
    assert "video" in e.value.fix and "picamera2" in e.value.fix


def test_config_object_and_overrides():
    cfg = SourceConfig(uri=str(VIDEO), prefetch=0)
    with open_source(cfg, loop=True) as src:
        assert src.loop and src.frame_count is None
    with pytest.raises(pydantic.ValidationError):
        SourceConfig(uri="0", prefetch=-1)


# -- LatestFrameReader ---------------------------------------------------------------


def test_latest_frame_reader_drops_stale_frames(video_digests):
    """A slow consumer gets the newest frames; every decoded frame is either returned or counted as dropped."""
    reader = LatestFrameReader(open_source(str(VIDEO), prefetch=0))
    got = []
    with reader:
        for frame in reader:
            got.append(frame)
            time.sleep(0.02)  # a model slower than decoding
    assert reader.captured == 205
    assert reader.dropped > 0
    assert len(got) + reader.dropped == 205
    idx = [f.index for f in got]
    assert idx == sorted(set(idx))  # strictly increasing, never a stale frame after a newer one
    assert got[-1].index == 204  # the newest frame is never lost
    assert all(digest(f.image) == video_digests[f.index] for f in got[::5])


class _Blocking(FrameSource):
    """A live source that delivers a few frames and then hangs (like a camera whose cable came loose)."""

    is_live = True
    description = "hanging test source"
    close_from_other_thread = True

    def __init__(self, n: int):
        self.n = n
        self.i = 0
        self.released = threading.Event()
        self.closed = False

    def read(self):
        if self.i >= self.n:
            self.released.wait()
            raise SourceError("closed while blocked")
        self.i += 1
        return Frame(self.i - 1, time.time(), np.zeros((4, 4, 3), np.uint8))

    def close(self):
        self.closed = True
        self.released.set()


def test_latest_frame_reader_stall_timeout():
    inner = _Blocking(2)
    reader = LatestFrameReader(inner, stall_timeout=0.3, join_timeout=0.2)
    first = reader.read()
    assert first is not None
    t = time.monotonic()
    with pytest.raises(SourceError) as e:
        while True:
            reader.read()
    assert 0.25 < time.monotonic() - t < 2.0
    assert "no frame for 0.3 s" in e.value.problem
    reader.close()
    assert inner.closed and not reader._thread.is_alive()


def test_latest_frame_reader_propagates_errors():
    class Failing(_Blocking):
        def read(self):
            raise SourceError("camera unplugged", "plug it in")

    reader = LatestFrameReader(Failing(0))
    with pytest.raises(SourceError, match="unplugged"):
        reader.read()
    reader.close()


def test_edgepose_probe_reads_a_video_and_an_image_and_prints_their_frame_size(tmp_path, capsys):
    from edgepose.cli import main

    out = tmp_path / "last.jpg"
    assert main(["probe", str(VIDEO), "--frames", "5", "--save", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 frames of 1280x720" in text and "declared fps 50.0" in text and f"last frame written to {out}" in text
    assert cv2.imread(str(out)).shape == (720, 1280, 3)
    assert main(["probe", str(COUPLE)]) == 0
    assert "1 frame of 1920x1278" in capsys.readouterr().out


def test_edgepose_probe_fails_in_one_line_naming_the_fix(tmp_path, capsys):
    from edgepose.cli import main

    assert main(["probe", str(tmp_path / "missing.avi")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose probe: error: video file") and "Fix:" in err and err.count("\n") == 1
    assert main(["probe", str(VIDEO), "--frames", "1", "--save", str(tmp_path / "no" / "such" / "dir.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose probe: error: could not write") and "Fix:" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["probe", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose probe: error:") and "Fix:" in err and err.count("\n") == 1
