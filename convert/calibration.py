"""Images for calibration and evaluation: reading, preprocessing, the held-out split.

Preprocessing is the runtime's own function (:func:`edgepose.preprocess.fit_to_input`,
imported, not copied): the same resize filter, BGR->RGB, then scaled to the float
model's input range. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from edgepose.preprocess import fit_to_input, to_float_input
from edgepose.sources.images import IMAGE_EXTENSIONS, is_image_path
from edgepose.sources.images import read_image as _read_image

from .errors import ConvertError

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


def preprocess(
    image_bgr: np.ndarray, size: tuple[int, int], input_range: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """``[1, h, w, 3]`` float32 RGB scaled to ``input_range``, resized exactly as the runtime does by default."""
    rgb, _ = fit_to_input(image_bgr, size[0], size[1])
    return to_float_input(rgb, input_range)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if is_image_path(p) and p.is_file())


def read_image(path: Path) -> np.ndarray:
    """The device's :func:`edgepose.sources.images.read_image`, failing with a :class:`ConvertError`."""
    return _read_image(path, error=ConvertError)


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the video (BGR)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConvertError(
            f"video {path} cannot be opened.", "pass a video OpenCV can read (e.g. .mp4/.avi), or a folder of images."
        )
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    frames: list[np.ndarray] = []
    try:
        if total > 0:
            wanted = sorted(set(np.linspace(0, total - 1, num=min(count, total)).astype(int).tolist()))
            i = 0
            target = iter(wanted)
            nxt = next(target, None)
            while nxt is not None:
                ok, frame = cap.read()
                if not ok:
                    break
                if i == nxt:
                    frames.append(frame)
                    nxt = next(target, None)
                i += 1
        else:  # some containers do not report a frame count
            while len(frames) < count:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise ConvertError(f"video {path} has no readable frames.", "pass another video or a folder of images.")
    return frames


def split_held_out(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Deterministic half/half split of sorted paths: even positions calibrate, odd positions evaluate."""
    ps = sorted(paths)
    return ps[0::2], ps[1::2]


def load_calibration(
    sources: Iterable[str | Path], video_frames_per_file: int = 40, exclude: Iterable[Path] = ()
) -> list[np.ndarray]:
    """BGR images from image files, folders of images and videos.

    ``exclude`` keeps evaluation images out of calibration.
    """
    excluded = {Path(p).resolve() for p in exclude}
    images: list[np.ndarray] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise ConvertError(
                f"calibration source {p} does not exist.", "pass a folder of images or a video with --calibration."
            )
        if p.is_dir():
            files = [f for f in list_images(p) if f.resolve() not in excluded]
            if not files:
                raise ConvertError(
                    f"calibration folder {p} has no images ({', '.join(sorted(IMAGE_EXTENSIONS)[:6])}, ...).",
                    "put 50-300 images of the scenes the device will see in it, or pass a video.",
                )
            images.extend(read_image(f) for f in files)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            images.extend(video_frames(p, video_frames_per_file))
        elif is_image_path(p):
            images.append(read_image(p))
        else:
            raise ConvertError(
                f"calibration source {p} is neither an image, a video nor a folder.",
                "pass a folder of images or a video file.",
            )
    if not images:
        raise ConvertError(
            "no calibration images were given.",
            "pass --calibration FOLDER_OR_VIDEO (int8 needs real images to set its ranges).",
        )
    return images


def augment(images: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """Each image and its mirror image: people face both ways, and so should the ranges."""
    for img in images:
        yield img
        yield img[:, ::-1]
