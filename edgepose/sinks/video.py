"""Write annotated frames to a video file, an image, or a folder of images.

``VideoSink(path, fps, size)`` picks the output from ``path``:

* ``.mp4`` / ``.m4v`` / ``.mov`` -> ``mp4v`` (MPEG-4 Part 2: every opencv-python wheel
  can write it; H.264 needs an encoder the headless wheels lack), ``.avi`` -> ``MJPG``,
  ``.mkv`` -> ``mp4v``; ``fourcc=`` overrides.
* ``.jpg`` / ``.png`` / ... -> one image holding the latest frame, replaced atomically
  (a viewer or web server never sees a half-written file).
* an existing folder, or a path ending in ``/`` -> ``frame_000000.jpg``, ... one per frame.

Frames of another size than ``size`` are resized (OpenCV's writer would silently
drop them). With ``size=None`` the first frame decides.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import EdgeposeError
from ..types import FrameResult

log = logging.getLogger(__name__)

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class VideoSinkError(EdgeposeError):
    """An output file or folder that cannot be written."""


def output_kind(path: str | Path) -> str:
    """``video``, ``image`` or ``folder`` for an output path."""
    s = str(path)
    p = Path(s)
    if p.is_dir() or s.endswith(("/", os.sep)):
        return "folder"
    ext = p.suffix.lower()
    if ext in VIDEO_FOURCC:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if not ext:
        return "folder"
    raise VideoSinkError(
        f"cannot tell what to write for output {s!r} (extension {ext!r}).",
        f"use a video ({', '.join(sorted(VIDEO_FOURCC))}), an image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or a folder ending in '/'.",
    )


class VideoSink:
    def __init__(
        self,
        path: str | Path,
        fps: float | None = 30.0,
        size: tuple[int, int] | None = None,
        *,
        fourcc: str | None = None,
        image_ext: str = ".jpg",
        jpeg_quality: int = 90,
    ):
        self.path = Path(path)
        self.kind = output_kind(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.size: tuple[int, int] | None = (int(size[0]), int(size[1])) if size else None  # (width, height)
        self.frames_written = 0
        self.resized = 0
        self.image_ext = image_ext if image_ext.startswith(".") else f".{image_ext}"
        self._params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        self._writer: cv2.VideoWriter | None = None
        self._closed = False
        self.fourcc = fourcc or VIDEO_FOURCC.get(self.path.suffix.lower(), "mp4v")
        if len(self.fourcc) != 4:
            raise VideoSinkError(f"fourcc {self.fourcc!r} is not 4 characters.", "use e.g. 'mp4v' or 'MJPG'.")
        parent = self.path if self.kind == "folder" else self.path.parent
        if self.kind == "folder":
            if not parent.parent.is_dir():
                raise VideoSinkError(
                    f"the folder {parent.parent} for output {parent} does not exist.",
                    f"create it first: mkdir -p {parent.parent}",
                )
            parent.mkdir(exist_ok=True)
        elif not parent.is_dir():
            raise VideoSinkError(
                f"the folder {parent} for output {self.path.name} does not exist.",
                f"create it first: mkdir -p {parent}",
            )
        if not os.access(parent, os.W_OK):
            raise VideoSinkError(
                f"the folder {parent} is not writable.", "pick another output path or fix its permissions."
            )
        if self.kind == "video" and self.size is not None:
            self._open_writer(self.size)

    def _open_writer(self, size: tuple[int, int]) -> None:
        w, h = size
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, (int(w), int(h)))
        if not writer.isOpened():
            writer.release()
            raise VideoSinkError(
                f"OpenCV cannot write {self.path.suffix} video with codec {self.fourcc!r} here.",
                "use the default (.mp4 with 'mp4v' or .avi with 'MJPG'), or write images to a folder instead.",
            )
        self._writer = writer
        self.size = (int(w), int(h))

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8:
            raise VideoSinkError(
                f"frames must be uint8 images, got {image.dtype}.",
                "convert with np.clip(img, 0, 255).astype(np.uint8).",
            )
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self.size is not None and (image.shape[1], image.shape[0]) != self.size:
            if self.resized == 0:
                log.warning(
                    "%s: frames are %dx%d, output is %dx%d; resizing",
                    self.path,
                    image.shape[1],
                    image.shape[0],
                    *self.size,
                )
            self.resized += 1
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        return image

    def write(self, frame: np.ndarray | FrameResult) -> None:
        """Append one BGR uint8 frame (or a ``FrameResult``'s image)."""
        if self._closed:
            raise VideoSinkError(f"{self.path} is already closed.", "open a new VideoSink.")
        image = frame.image if isinstance(frame, FrameResult) else frame
        if image is None:
            raise VideoSinkError(
                "the FrameResult carries no image.", "keep images in the pipeline output to write video."
            )
        if self.kind == "video":
            if self._writer is None:
                self._open_writer((image.shape[1], image.shape[0]))
            assert self._writer is not None  # _open_writer raises when it cannot open one
            self._writer.write(np.ascontiguousarray(self._fit(image)))
        elif self.kind == "image":
            self._write_image(self.path, self._fit(image))
        else:
            self._write_image(self.path / f"frame_{self.frames_written:06d}{self.image_ext}", self._fit(image))
        self.frames_written += 1

    def _write_image(self, target: Path, image: np.ndarray) -> None:
        ext = target.suffix.lower()
        ok, buf = cv2.imencode(ext, image, self._params if ext in (".jpg", ".jpeg") else [])
        if not ok:
            raise VideoSinkError(f"OpenCV could not encode {ext} images.", "use .jpg or .png.")
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_bytes(buf.tobytes())
            os.replace(tmp, target)
        except OSError as e:
            raise VideoSinkError(
                f"writing {target} failed: {e.strerror}.", "check free space and permissions."
            ) from None

    def close(self) -> int:
        """Finish the file; returns the number of frames written."""
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                self._writer.release()
                self._writer = None
        return self.frames_written

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VideoSink {self.kind} {self.path} {self.frames_written} frames>"
