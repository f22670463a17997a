"""Frame timing: rates over a sliding window and the stall rule; the service and the device page share both."""

from __future__ import annotations

from collections import deque
from typing import Sequence

#: Seconds of frames over which ``fps`` is measured (frames / elapsed time in this window).
FPS_WINDOW_S = 5.0
#: No frame for this long is a hang: the service's health file stops being touched (without a systemd
#: watchdog) and the device page's /healthz fails, unless the camera is being retried on purpose.
STALL_S = 60.0


def window_fps(times: Sequence[float]) -> float | None:
    """Frames per second over frame times (seconds, ascending): intervals / elapsed, None under two frames.

    Not a mean of per-frame rates: frames that come in bursts (a prefetch queue, a decoder's read-ahead)
    make 1/dt huge for most frames, and that mean read 196 fps for a clip processed at 30.
    """
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


class FpsMeter:
    """:func:`window_fps` over the last ``window`` seconds of frames."""

    def __init__(self, window: float = FPS_WINDOW_S):
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > self.window:
            self._times.popleft()

    def reset(self) -> None:
        self._times.clear()

    @property
    def fps(self) -> float | None:
        return window_fps(self._times)
