"""Test stand-in for ``picamera2`` (no Raspberry Pi camera here).

Implements the part of the real API that edgepose uses, with the same
signatures, the same array conventions and the same failure types:

* ``Picamera2(camera_num=0)`` with no camera attached raises ``IndexError``
  (picamera2 <= 0.3.2x: ``global_camera_info()[camera_num]``) or
  ``RuntimeError("Camera __init__ sequence did not complete.")`` (newer
  releases), chosen by ``FAKE.no_camera_error``; opening a camera that another
  ``Picamera2`` holds raises that ``RuntimeError`` too (libcamera acquire fails).
* ``create_video_configuration(main={"size": (w, h), "format": "RGB888"})``
  returns a dict; ``configure``, ``start``, ``stop``, ``close``.
* ``capture_array("main")`` returns ``(h, w, 3)`` uint8 for ``RGB888`` with
  pixels ordered ``[B, G, R]`` (the Picamera2 manual, appendix A), at the
  configured ``FrameRate`` (default 30).

Frames come from a real video file (``FAKE.video`` or ``$FAKE_PICAMERA2_VIDEO``)
resized to the configured size, else synthetic. ``FAKE.hang_after = n`` makes
``capture_array`` block after ``n`` frames, like a camera whose cable came
loose (requests never complete); ``close()`` releases the blocked call.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FAKE", "Picamera2"]


@dataclass
class FakeState:
    cameras: int = 1
    video: str | None = field(default_factory=lambda: os.environ.get("FAKE_PICAMERA2_VIDEO"))
    no_camera_error: str = "RuntimeError"  # or "IndexError"
    hang_after: int | None = None
    #: Every Picamera2 ever created (tests inspect the calls).
    instances: list = field(default_factory=list)
    acquired: set = field(default_factory=set)
    open_attempts: int = 0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


FAKE = FakeState()


class Picamera2:
    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None):
        FAKE.open_attempts += 1
        self.camera_idx = camera_num
        self.is_open = False
        self.started = False
        self.camera_config: dict | None = None
        self.calls: list[tuple[str, Any]] = [("__init__", camera_num)]
        self._cap = None
        self._frames = 0
        self._closed = threading.Event()
        if camera_num >= FAKE.cameras:
            if FAKE.no_camera_error == "IndexError":
                raise IndexError("list index out of range")
            raise RuntimeError("Camera __init__ sequence did not complete.")
        if camera_num in FAKE.acquired:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        FAKE.acquired.add(camera_num)
        self.is_open = True
        self.sensor_resolution = (1920, 1080)
        FAKE.instances.append(self)

    @staticmethod
    def global_camera_info() -> list:
        return [
            {"Model": "fake", "Location": 2, "Rotation": 0, "Id": f"/fake/cam{i}", "Num": i}
            for i in range(FAKE.cameras)
        ]

    def create_video_configuration(
        self,
        main=None,
        lores=None,
        raw=None,
        transform=None,
        colour_space=None,
        buffer_count=6,
        controls=None,
        display="main",
        encode="main",
        queue=True,
    ) -> dict:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        m = {"format": "XBGR8888", "size": (1280, 720)}
        for k, v in (main or {}).items():
            if k not in ("format", "size"):
                raise ValueError(f"Bad key {k!r}: valid stream configuration keys are ('format', 'size')")
            m[k] = v
        ctrl = {"FrameDurationLimits": (33333, 33333)}
        ctrl.update(controls or {})
        return {
            "use_case": "video",
            "main": m,
            "lores": lores,
            "raw": raw or {},
            "controls": ctrl,
            "buffer_count": buffer_count,
            "display": display,
            "encode": encode,
            "queue": queue,
        }

    def configure(self, camera_config: Any = "preview") -> None:
        if not isinstance(camera_config, dict):
            raise RuntimeError("fake picamera2 only accepts configuration dicts")
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self.calls.append(("configure", camera_config))
        self.camera_config = camera_config

    def start(self, config: Any = None, show_preview: Any = False) -> None:
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.calls.append(("start", None))
        if FAKE.video:
            import cv2

            self._cap = cv2.VideoCapture(FAKE.video)
        self.started = True
        self._next_t = time.monotonic()

    def _frame_interval(self) -> float:
        c = self.camera_config["controls"]
        if "FrameRate" in c:  # picamera2's virtual control (newer releases)
            return 1.0 / float(c["FrameRate"])
        # the slowest frame the limits allow, as libcamera does when exposure permits
        return c["FrameDurationLimits"][1] / 1e6

    def _make(self, size: tuple[int, int], fmt: str) -> np.ndarray:
        import cv2

        w, h = size
        bgr = None
        if self._cap is not None:
            ok, img = self._cap.read()
            if not ok:  # loop the clip like a camera that never ends
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = self._cap.read()
            if ok:
                bgr = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        if bgr is None:
            bgr = np.zeros((h, w, 3), np.uint8)
            bgr[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]  # blue ramp left to right
            bgr[:, :, 2] = (self._frames * 7) % 256
        if fmt == "RGB888":  # [B, G, R] in memory
            return bgr
        if fmt == "BGR888":  # [R, G, B] in memory
            return bgr[:, :, ::-1].copy()
        if fmt in ("XBGR8888", "XRGB8888"):
            a = np.full((h, w, 1), 255, np.uint8)
            px = bgr[:, :, ::-1] if fmt == "XBGR8888" else bgr
            return np.concatenate([px, a], axis=2)
        raise RuntimeError(f"fake picamera2 cannot make {fmt} arrays")

    def capture_array(self, name: str = "main", wait: Any = None, signal_function: Any = None) -> np.ndarray:
        if not self.started:
            # The real library waits forever for a request here; failing is kinder to tests.
            raise RuntimeError("Camera not started")
        if FAKE.hang_after is not None and self._frames >= FAKE.hang_after:
            self._closed.wait()
            raise RuntimeError("Camera closed while waiting for a request")
        self._next_t += self._frame_interval()
        delay = self._next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next_t = time.monotonic()
        stream = self.camera_config[name]
        arr = self._make(tuple(stream["size"]), stream["format"])
        self._frames += 1
        return arr

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.started = False

    def close(self) -> None:
        if not self.is_open:
            return
        self.stop()
        self.calls.append(("close", None))
        self.is_open = False
        self._closed.set()
        FAKE.acquired.discard(self.camera_idx)
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Picamera2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
