"""Raspberry Pi CSI cameras through picamera2 (libcamera).

picamera2 is installed from apt on Raspberry Pi OS (``python3-picamera2``), so
edgepose's venv is created with ``--system-site-packages``. The ``RGB888``
format delivers pixels as ``[B, G, R]`` in memory (Picamera2 manual, appendix
A), i.e. the OpenCV order: frames are used as they come, without a copy.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..errors import SourceError
from ..types import Frame
from .base import FrameSource
from .config import SourceConfig

log = logging.getLogger(__name__)

DEFAULT_SIZE = (640, 480)

NO_CAMERA_FIX = (
    "check the ribbon cable (contacts facing the right way, latch closed) and that "
    "'rpicam-hello --list-cameras' lists the camera; on a Pi 5 use the CAM/DISP port named "
    "by camera number; if the camera is a USB webcam use source uri '0' instead."
)


def parse_camera_num(uri: str) -> int:
    """``picamera2`` -> 0, ``picamera2:1`` -> 1."""
    _, _, num = uri.partition(":")
    if not num:
        return 0
    if not num.strip().isdigit():
        raise SourceError(
            f"bad picamera2 camera number in {uri!r}.", "write 'picamera2' or 'picamera2:N' with N = 0, 1, ..."
        )
    return int(num)


def picamera2_available() -> bool:
    try:
        import picamera2  # noqa: F401
    except Exception:
        return False
    return True


class Picamera2Source(FrameSource):
    """Frames from ``Picamera2.capture_array("main")``; timestamps are ``time.time()``."""

    is_live = True
    # picamera2's close() stops the camera through its own event loop, so a
    # reader thread blocked in capture_array can be released from outside.
    close_from_other_thread = True

    def __init__(self, camera_num: int = 0, config: SourceConfig | None = None):
        cfg = config or SourceConfig()
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise SourceError(
                f"picamera2 cannot be imported ({e}).",
                "on Raspberry Pi OS: 'sudo apt install python3-picamera2' and create edgepose's venv with "
                "'python3 -m venv --system-site-packages'; elsewhere use a camera index such as 0.",
            ) from None
        except Exception as e:  # e.g. "numpy.dtype size changed": apt's picamera2 built against another numpy
            raise SourceError(
                f"picamera2 is installed but fails to import ({type(e).__name__}: {e}).",
                "keep the venv's numpy at the version apt installed ('python3 -c \"import numpy; print(numpy.__version__)\"' "
                "outside the venv, then pip install numpy==that) — firstboot.sh pins it.",
            ) from None
        self.camera_num = camera_num
        self.description = f"picamera2 camera {camera_num}"
        try:
            # Older picamera2 raises IndexError (camera list is empty), newer ones RuntimeError.
            cam: Any = Picamera2(camera_num)
        except (IndexError, RuntimeError) as e:
            raise SourceError(f"no Raspberry Pi camera {camera_num} found (picamera2: {e}).", NO_CAMERA_FIX) from None
        self._cam: Any | None = cam
        size = (cfg.width, cfg.height) if cfg.width and cfg.height else DEFAULT_SIZE
        try:
            kwargs: dict[str, Any] = {}
            if cfg.fps:
                # FrameDurationLimits (microseconds) rather than the "FrameRate" alias, which
                # picamera2 releases before the alias was added reject.
                frame_us = int(round(1e6 / cfg.fps))
                kwargs["controls"] = {"FrameDurationLimits": (frame_us, frame_us)}
            video_config = cam.create_video_configuration(main={"size": size, "format": "RGB888"}, **kwargs)
            cam.configure(video_config)
            cam.start()
        except Exception as e:
            self.close()
            raise SourceError(
                f"{self.description} could not be started at {size[0]}x{size[1]} ({type(e).__name__}: {e}).",
                "pick a size the sensor supports (e.g. 640x480, 1280x720) and check no other program uses the camera.",
            ) from None
        self.fps = cfg.fps
        self.size = size
        self.description += f" ({size[0]}x{size[1]})"
        self._index = 0

    def read(self) -> Frame | None:
        cam = self._cam
        if cam is None:
            return None
        try:
            arr = cam.capture_array("main")
        except Exception as e:
            raise SourceError(
                f"{self.description} stopped delivering frames ({type(e).__name__}: {e}).",
                "check the ribbon cable; edgepose reconnects on its own when reconnect = true.",
            ) from None
        ts = time.time()
        if arr.ndim == 3 and arr.shape[2] == 4:  # XRGB8888 layout is [B, G, R, A]
            arr = arr[:, :, :3]
        frame = Frame(self._index, ts, np.ascontiguousarray(arr, dtype=np.uint8))
        self._index += 1
        return frame

    def close(self) -> None:
        cam, self._cam = getattr(self, "_cam", None), None
        if cam is None:
            return
        for step in (cam.stop, cam.close):
            try:
                step()
            except Exception as e:  # a camera that vanished may fail to stop; release what we can
                log.debug("picamera2 %s failed: %s", step.__name__, e)
