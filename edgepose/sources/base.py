"""The :class:`FrameSource` interface every capture kind implements."""
from __future__ import annotations

import re
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


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
#: Query parameters that carry a secret on cameras' HTTP/RTSP URLs (``?user=admin&pwd=...``, ``?token=...``).
_SECRET_PARAM = re.compile(r"(?i)^(.*(pass|pwd|secret|token|key|auth|sig|credential).*|pw|psk)$")
_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#]*)=(?P<value>[^&;#]*)")


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x`` (for logs, errors, printed configs and status topics).

    The user information ends at the last ``@`` before the query, so a password holding ``@`` or ``/`` is hidden
    whole; query values named like secrets (``pwd=``, ``token=``, ``api_key=``) become ``***`` too. Any URL inside
    the text is redacted, so error messages can be passed through as well.
    """
    out, pos = [], 0
    for m in _SCHEME.finditer(url):
        if m.start() < pos:
            continue
        out.append(url[pos:m.end()])
        end = len(url)
        # A URL inside a longer message ends at a blank or a quote; a whole value (a config's uri) is all URL,
        # so a password with a blank in it is hidden whole too.
        stops = ("\n",) if m.start() == 0 else (" ", "\t", "\n", "'", '"', ">")
        for stop in stops:
            i = url.find(stop, m.end())
            if i != -1:
                end = min(end, i)
        rest = url[m.end():end]
        query_at = min((i for i in (rest.find("?"), rest.find("#")) if i != -1), default=len(rest))
        at = rest.rfind("@", 0, query_at)
        if at != -1:
            info = rest[:at]
            if ":" in info:
                rest = info.split(":", 1)[0] + ":***" + rest[at:]
            elif "/" not in info:
                rest = info + rest[at:]  # a user name alone
        rest = _PARAM.sub(lambda p: f"{p['sep']}{p['name']}=***" if _SECRET_PARAM.match(p["name"]) and p["value"] else p[0], rest)
        out.append(rest)
        pos = end
    out.append(url[pos:])
    return "".join(out)
