"""A phone as a camera: an HTTP MJPEG stream (what IP-camera apps serve at http://phone:8080/video), read through
the same stream source as RTSP, with reconnects.

The server is a real one from Debian's packages: ustreamer (µStreamer, the MJPEG server of PiKVM). Without a
V4L2 device it serves its --blank JPEG as the multipart/x-mixed-replace stream, byte for byte, about once a
second, which makes the frames known: they must decode to the test image and give its poses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepose.sources import SourceState, open_source
from tests.conftest import SHARED
from tests.conftest_web import get
from tests.procs import edgepose, free_port, wait_until

HERE = Path(__file__).resolve().parent
IMAGE = SHARED / "images/test_couple.jpg"
MODEL = SHARED / "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite"


class Ustreamer:
    def __init__(self, port: int):
        exe = shutil.which("ustreamer")
        assert exe, "ustreamer is needed for the MJPEG tests: apt-get install -y ustreamer (.ci/run installs it)"
        self.exe, self.port, self.proc = exe, port, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    def start(self) -> None:
        # /dev/null is no camera: ustreamer keeps retrying it and streams the --blank picture meanwhile.
        self.proc = subprocess.Popen(
            [self.exe, "--device", "/dev/null", "--blank", str(IMAGE), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: get(f"http://127.0.0.1:{self.port}/snapshot", timeout=2)[0] == 200,
            20,
            "ustreamer to serve",
            interval=0.1,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def server():
    s = Ustreamer(free_port())
    s.start()
    yield s
    s.stop()


@pytest.mark.integration
def test_mjpeg_frames_are_the_servers_pictures_and_give_its_poses(server, tmp_path):
    with open_source(server.url) as src:
        frames = [f for _, f in zip(range(2), src)]
    want = cv2.imread(str(IMAGE))
    for f in frames:
        assert f.image.shape == want.shape
        # FFmpeg's JPEG decoder and libjpeg's may round an IDCT differently: a grey level at most.
        assert np.abs(f.image.astype(int) - want).mean() < 1.0
    out = tmp_path / "poses.jsonl"
    r = edgepose(
        "run",
        "--model",
        str(MODEL),
        "--source",
        server.url,
        "--max-frames",
        "2",
        "--no-track",
        "--jsonl",
        str(out),
        "-q",
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    still = tmp_path / "still.jsonl"
    assert (
        edgepose(
            "run", "--model", str(MODEL), "--source", str(IMAGE), "--no-track", "--jsonl", str(still), "-q", timeout=120
        ).returncode
        == 0
    )
    (want_people,) = [json.loads(line)["people"] for line in still.read_text().splitlines()]
    got = [json.loads(line)["people"] for line in out.read_text().splitlines()]
    assert len(got) == 2 and len(want_people) >= 2
    for people in got:
        assert len(people) == len(want_people)
        for p, q in zip(people, want_people):
            assert abs(p["score"] - q["score"]) < 0.02


@pytest.mark.integration
def test_mjpeg_stream_reconnects_when_the_server_is_killed_and_restarted(server):
    states: list[SourceState] = []
    src = open_source(server.url, on_state=states.append, retry_initial_s=0.2, retry_max_s=0.5, timeout_s=3.0)
    try:
        first = src.read()
        assert first is not None and first.index == 0
        server.stop()
        got: list = []
        reader = threading.Thread(target=lambda: got.append(src.read()), daemon=True)
        reader.start()
        assert wait_until(lambda: any(s.state == "retrying" for s in states), 30, fail=False), [s.state for s in states]
        assert reader.is_alive()  # no frame while the server is gone
        server.start()
        reader.join(timeout=30)
        assert got and got[0] is not None, [s.to_dict() for s in states]
        assert got[0].index > first.index  # indices continue across the reconnect
        assert src.reconnects == 1 and states[-1].state == "connected"
        retrying = next(s for s in states if s.state == "retrying")
        assert "stream http://127.0.0.1" in (retrying.error or "")
    finally:
        src.close()
