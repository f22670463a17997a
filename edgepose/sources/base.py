"""The :class:`FrameSource` interface every capture kind implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

from ..types import Frame


class FrameSource(ABC):
    """Iterable of :class:`~edgepose.types.Frame` (BGR uint8 images).

    ``read()`` returns the next frame or ``None`` at the end; live sources never
    end on their own: losing the camera or stream raises
    :class:`~edgepose.errors.SourceError` (which :class:`RetryingSource` turns
    into a reconnect).
    """

    #: Human-readable name for logs and status messages (no passwords).
    description: str = "source"
    #: Frames per second if known (file's rate, requested camera rate), else ``None``.
    fps: float | None = None
    #: Number of frames for files and image sets; ``None`` for live sources.
    frame_count: int | None = None
    #: Cameras and streams: timestamps are wall-clock time and frames can be dropped.
    is_live: bool = False
    #: Photos (a folder, a glob, one image): unrelated frames, not a sequence, unless the config says so.
    is_image_set: bool = False
    #: Whether ``close()`` may be called while another thread is blocked in ``read()``.
    close_from_other_thread: bool = False

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or ``None`` when a file or image set is finished."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most sources hold nothing to release
        """Release the device or file; safe to call more than once."""

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"
