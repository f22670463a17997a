"""Live sources: an HTTP stream served on loopback, reconnect with back-off, and picamera2 through its test stand-in."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepose.errors import SourceError
from edgepose.sources import (
    LatestFrameReader,
    Picamera2Source,
    RetryingSource,
    StreamSource,
    backoff_delays,
    open_source,
)
from tests.conftest import SHARED
from tests.conftest_web import FileServer
from tests.procs import free_port

VIDEO = SHARED / "video" / "openpose_video.avi"
FAKE_DIR = Path(__file__).resolve().parent / "fake_picamera2"


def digest(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """The first ~fifth of the real clip (about 40 frames) in a temp folder, to keep stream tests quick."""
    d = tmp_path_factory.mktemp("clip")
    data = VIDEO.read_bytes()
    (d / "clip.avi").write_bytes(data[: len(data) // 5])
    return d


@pytest.fixture(scope="module")
def http_clip(short_clip):
    srv = FileServer(short_clip)
    yield srv.url + "clip.avi"
    srv.close()


def test_backoff_delays():
    g = backoff_delays(0.5, 4.0)
    assert [next(g) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


# -- streams --------------------------------------------------------------------------


def test_http_stream_frames(http_clip, short_clip):
    ref = cv2.VideoCapture(str(short_clip / "clip.avi"))
    ok, first = ref.read()
    ref.release()
    assert ok
    t0 = time.time()
    with open_source(http_clip, reconnect=False, latest_only=False) as src:
        assert isinstance(src, StreamSource) and src.is_live and src.frame_count is None
        assert src.fps == 50.0
        frames = [f for _, f in zip(range(10), src)]
    assert digest(frames[0].image) == digest(first)
    assert [f.index for f in frames] == list(range(10))
    # live sources are stamped with wall-clock time
    assert all(t0 - 1 <= f.timestamp <= time.time() for f in frames)


def test_stream_reconnects_when_it_ends(http_clip, short_clip):
    """The server closing the stream counts as losing it: reopened, indices continue."""
    cap = cv2.VideoCapture(str(short_clip / "clip.avi"))
    n = int(sum(1 for _ in iter(lambda: cap.read()[0] or None, None)))
    cap.release()
    states = []
    with open_source(http_clip, latest_only=False, retry_initial_s=0.02, on_state=states.append) as src:
        assert isinstance(src, RetryingSource)
        frames = [f for _, f in zip(range(n + 5), src)]
        assert src.reconnects >= 1
    assert [f.index for f in frames] == list(range(n + 5))
    names = [s.state for s in states]
    assert names[:3] == ["connected", "retrying", "connected"]
    assert names[-1] == "closed"
    retry = states[1]
    assert "stopped delivering frames" in retry.error and retry.attempt == 1 and retry.retry_in == 0.02
    assert states[2].reconnects == 1
    assert set(states[1].to_dict()) >= {"state", "error", "attempt", "retry_in", "reconnects", "description"}


def test_stream_not_there_fails_fast_without_retry_first_open():
    url = f"rtsp://127.0.0.1:{free_port()}/live"
    t = time.monotonic()
    with pytest.raises(SourceError) as e:
        open_source(url)
    assert time.monotonic() - t < 5
    assert "could not be opened" in e.value.problem and "rtsp_transport" in e.value.fix


def test_first_open_retries_with_backoff_until_server_appears(short_clip, file_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}/clip.avi"
    states = []
    src = open_source(
        url, retry_first_open=True, retry_initial_s=0.05, retry_max_s=0.2, on_state=states.append, latest_only=False
    )
    timer = threading.Timer(0.6, lambda: file_server(short_clip, port=port))
    timer.start()
    try:
        frame = src.read()
    finally:
        timer.join()
        src.close()
    assert frame is not None and frame.index == 0
    retrying = [s for s in states if s.state == "retrying"]
    assert len(retrying) >= 3
    delays = [s.retry_in for s in retrying]
    assert delays[:3] == [0.05, 0.1, 0.2] and max(delays) == 0.2
    assert [s.attempt for s in retrying] == list(range(1, len(retrying) + 1))
    assert states[len(retrying)].state == "connected"


def test_gives_up_after_max_attempts():
    states = []
    src = open_source(
        f"rtsp://127.0.0.1:{free_port()}/x",
        retry_first_open=True,
        retry_initial_s=0.01,
        retry_max_attempts=3,
        on_state=states.append,
    )
    with pytest.raises(SourceError) as e:
        src.read()
    assert "3 attempts" in e.value.problem and e.value.fix
    assert [s.state for s in states] == ["retrying"] * 3 + ["failed"]
    src.close()


def test_close_interrupts_backoff_wait():
    src = open_source(f"rtsp://127.0.0.1:{free_port()}/x", retry_first_open=True, retry_initial_s=30.0)
    threading.Timer(0.2, src.close).start()
    t = time.monotonic()
    assert src.read() is None
    assert time.monotonic() - t < 5


# -- picamera2 (through tests/fake_picamera2, which follows the real API) ----------------


@pytest.fixture
def fake_picamera2(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    sys.modules.pop("picamera2", None)
    import picamera2

    assert Path(picamera2.__file__).is_relative_to(FAKE_DIR)
    picamera2.FAKE.reset()
    picamera2.FAKE.video = str(VIDEO)
    yield picamera2.FAKE
    sys.modules.pop("picamera2", None)


def test_picamera2_frames_are_bgr_at_requested_size(fake_picamera2):
    t0 = time.time()
    with open_source("picamera2", width=640, height=360, fps=200, reconnect=False, latest_only=False) as src:
        assert isinstance(src, Picamera2Source) and src.is_live and src.fps == 200
        frames = [f for _, f in zip(range(3), src)]
        cam = fake_picamera2.instances[0]
    cfg = dict(cam.calls)["configure"]
    assert cfg["main"] == {"format": "RGB888", "size": (640, 360)}
    assert cfg["controls"]["FrameDurationLimits"] == (5000, 5000)  # 200 fps, in microseconds
    assert [c for c, _ in cam.calls][-2:] == ["stop", "close"]
    assert not fake_picamera2.acquired
    ref = cv2.VideoCapture(str(VIDEO))
    for f in frames:
        ok, img = ref.read()
        # RGB888 memory order is B, G, R: used as is, no channel swap
        expected = cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)
        assert f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8
        assert np.array_equal(f.image, expected)
        assert t0 - 1 <= f.timestamp <= time.time()
    ref.release()


def test_picamera2_camera_number(fake_picamera2):
    fake_picamera2.cameras = 2
    with open_source("picamera2:1", fps=200, reconnect=False) as src:
        assert src.read() is not None
    assert fake_picamera2.instances[0].camera_idx == 1


@pytest.mark.parametrize("error", ["IndexError", "RuntimeError"])
def test_picamera2_without_camera(fake_picamera2, error):
    fake_picamera2.cameras = 0
    fake_picamera2.no_camera_error = error
    with pytest.raises(SourceError) as e:
        open_source("picamera2")
    assert "no Raspberry Pi camera 0 found" in e.value.problem
    assert "rpicam-hello --list-cameras" in e.value.fix


def test_picamera2_camera_plugged_in_later(fake_picamera2):
    fake_picamera2.cameras = 0
    states = []
    src = open_source(
        "picamera2", fps=200, retry_first_open=True, retry_initial_s=0.02, retry_max_s=0.05, on_state=states.append
    )
    timer = threading.Timer(0.2, lambda: setattr(fake_picamera2, "cameras", 1))
    timer.start()
    try:
        frame = src.read()
    finally:
        timer.join()
        src.close()
    assert frame is not None and frame.image.shape == (480, 640, 3)
    assert fake_picamera2.open_attempts >= 3
    assert [s.state for s in states][-2:] == ["connected", "closed"]
    assert all(s.state == "retrying" and "no Raspberry Pi camera" in s.error for s in states[:-2])
    assert not fake_picamera2.acquired


def test_picamera2_hang_is_detected_and_camera_reopened(fake_picamera2):
    """A camera that stops completing requests is declared lost after timeout_s, closed (releasing
    the blocked capture and the exclusive camera) and opened again."""
    fake_picamera2.hang_after = 4
    states = []
    # 20 fps: slow enough that the test reads every frame (the latest-frame reader drops none)
    with open_source("picamera2", fps=20, timeout_s=0.3, retry_initial_s=0.02, on_state=states.append) as src:
        assert isinstance(src._inner, LatestFrameReader)
        frames = [f for _, f in zip(range(7), src)]
        assert src.reconnects == 1
    assert [f.index for f in frames] == list(range(7))
    assert [s.state for s in states] == ["connected", "retrying", "connected", "closed"]
    assert "no frame for 0.3 s" in states[1].error
    first, second = fake_picamera2.instances[:2]
    assert not first.is_open and not second.is_open
    assert not fake_picamera2.acquired


def test_picamera2_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails like on a machine without it
    with pytest.raises(SourceError) as e:
        open_source("picamera2", reconnect=False)
    assert "cannot be imported" in e.value.problem and "--system-site-packages" in e.value.fix


def test_picamera2_broken_install(tmp_path, monkeypatch):
    """picamera2 present but failing at import (apt's build against another numpy) is named as such."""
    pkg = tmp_path / "picamera2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(SourceError) as e:
        open_source("picamera2", reconnect=False)
    assert "fails to import" in e.value.problem and "numpy.dtype size changed" in e.value.problem
    assert "numpy==" in e.value.fix
    sys.modules.pop("picamera2", None)


def test_close_from_another_thread_while_reading(fake_picamera2):
    """The service stops the source from its signal handler while the frame loop waits in read()."""
    fake_picamera2.hang_after = 2
    src = open_source("picamera2", fps=200, timeout_s=30)
    assert src.read() is not None
    closer = threading.Timer(0.3, src.close)
    closer.start()
    t = time.monotonic()
    while src.read() is not None:
        pass
    assert time.monotonic() - t < 5
    closer.join(5)
    assert src.state.state == "closed" and not fake_picamera2.acquired
