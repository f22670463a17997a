"""Still images: one file, a folder (sorted), or a glob pattern."""

from __future__ import annotations

import glob as _glob
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import cv2

from ..errors import EdgeposeError, SourceError, first_line
from ..types import Frame
from .base import FrameSource
from .config import SourceConfig

log = logging.getLogger(__name__)

#: Extensions OpenCV's imread decodes in the opencv-python wheels.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".dib",
        ".webp",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".jp2",
        ".sr",
        ".ras",
    }
)
GLOB_CHARS = re.compile(r"[*?\[]")


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def natural_key(path: Path) -> tuple:
    """Sort ``img2.jpg`` before ``img10.jpg`` (numbers compare as numbers)."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def _max_pixels() -> int:
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
    except ValueError:
        return 1 << 30


def read_image(path: str | Path, *, error: type[EdgeposeError] = SourceError) -> cv2.typing.MatLike:
    """BGR uint8 (grey and 16-bit files converted; EXIF rotation applied), or ``error`` naming the fix.

    The one way edgepose reads an image file: sources, calibration, relocalization datasets and scenes.
    ``error`` is the exception class of the caller's domain (:class:`SourceError` for sources).
    """
    path = Path(path)
    if not path.exists():
        raise error(f"image {path} does not exist.", "check the path (relative paths start from the current folder).")
    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as e:
        # OpenCV raises (instead of returning None) for a header over its pixel limit.
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise error(
                f"{path} is larger than OpenCV reads (its header claims over {_max_pixels() / 1e6:.0f} megapixels).",
                "shrink the image, or raise the limit with the environment variable OPENCV_IO_MAX_IMAGE_PIXELS.",
            ) from None
        raise error(
            f"{path} could not be read as an image ({first_line(e, 160, last=True)}).",
            "open it in an image viewer; re-save it as JPEG or PNG, or remove it.",
        ) from None
    if img is None:
        raise error(
            f"{path} could not be read as an image (corrupt, empty or an unsupported format).",
            "open it in an image viewer; re-save it as JPEG or PNG, or remove it.",
        )
    return img


class ImageSequenceSource(FrameSource):
    """A fixed list of image files, read one per frame.

    Timestamps are ``index / fps`` (``fps`` from the config, 1 if unset) so that
    tracking and action timing behave as for a slow video. In a folder or glob a
    file that cannot be decoded is skipped with a warning and listed in
    ``skipped``; a single image that cannot be decoded is an error.
    """

    is_live = False
    is_image_set = True

    def __init__(
        self, paths: Sequence[Path], description: str, config: SourceConfig | None = None, *, strict: bool = False
    ):
        cfg = config or SourceConfig()
        self.paths = list(paths)
        self.description = description
        self.fps = cfg.fps
        self.loop = cfg.loop
        self.strict = strict
        self.frame_count = None if self.loop else len(self.paths)
        self.skipped: list[Path] = []
        self._pos = 0
        self._index = 0
        self._closed = False
        #: The file the last frame read from this source came from (with a PrefetchReader in front,
        #: that is ahead of the consumer: use ``path_of(frame.index)``).
        self.current_path: Path | None = None
        self._recent: OrderedDict[int, Path] = OrderedDict()
        self._first: Any = None  # the first image, read at open when strict
        if strict:  # fail at open, not at the first read
            self._first = read_image(self.paths[0])
        else:
            self._first = None

    def read(self) -> Frame | None:
        dt = 1.0 / self.fps if self.fps else 1.0
        while not self._closed:
            if self._pos >= len(self.paths):
                if not self.loop or len(self.skipped) >= len(self.paths):
                    if len(self.skipped) == len(self.paths) and self._index == 0:
                        raise SourceError(
                            f"none of the {len(self.paths)} images in {self.description} could be read.",
                            "check the files open in an image viewer.",
                        )
                    return None
                self._pos = 0
            path = self.paths[self._pos]
            self._pos += 1
            if self._first is not None:
                img, self._first = self._first, None
            else:
                try:
                    img = read_image(path)
                except SourceError as e:
                    if self.strict:
                        raise
                    if path not in self.skipped:
                        log.warning("skipping %s: %s", path, e.problem)
                        self.skipped.append(path)
                    continue
            frame = Frame(self._index, self._index * dt, img)
            self._index += 1
            self.current_path = path
            self._recent[frame.index] = path
            if len(self._recent) > 256:  # enough for any prefetch depth; bounded when looping
                self._recent.popitem(last=False)
            return frame
        return None

    def path_of(self, index: int) -> Path | None:
        """The file frame ``index`` was read from (for the last 256 frames)."""
        return self._recent.get(index)

    def close(self) -> None:
        self._closed = True


def image_source(path: str | Path, config: SourceConfig | None = None) -> ImageSequenceSource:
    p = Path(path)
    return ImageSequenceSource([p], f"image {p.name}", config, strict=True)


def folder_source(path: str | Path, config: SourceConfig | None = None) -> ImageSequenceSource:
    p = Path(path)
    if not p.is_dir():
        raise SourceError(f"folder {p} does not exist.", "check the path, or pass a video file or camera index.")
    files = sorted((f for f in p.iterdir() if f.is_file() and is_image_path(f)), key=natural_key)
    if not files:
        others = sum(1 for f in p.iterdir())
        what = f"{others} other files" if others else "nothing"
        raise SourceError(
            f"folder {p} contains no images ({what}; looked for {', '.join(sorted(IMAGE_EXTENSIONS)[:6])}, ...).",
            "put .jpg or .png files in it, or pass the video file or glob pattern you meant.",
        )
    return ImageSequenceSource(files, f"folder {p} ({len(files)} images)", config)


def glob_source(pattern: str, config: SourceConfig | None = None) -> ImageSequenceSource:
    matches = [Path(m) for m in _glob.glob(pattern, recursive=True)]
    files = sorted((m for m in matches if m.is_file() and is_image_path(m)), key=natural_key)
    if not files:
        extra = f" ({len(matches)} matches, none an image)" if matches else ""
        raise SourceError(
            f"glob pattern {pattern!r} matches no image files{extra}.",
            "check the pattern (quote it so the shell does not expand it; use ** for subfolders).",
        )
    return ImageSequenceSource(files, f"glob {pattern} ({len(files)} images)", config)
