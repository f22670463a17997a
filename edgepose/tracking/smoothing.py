"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) over all keypoints of one track.

Little smoothing when a joint moves fast (no lag), strong smoothing when it
rests (no jitter). Speeds are divided by the person's torso size so one
``beta`` works for people near and far from the camera.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters ``(K, 2)`` points with per-point state; invisible points pass through and restart the filter."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.3, d_cutoff: float = 1.0):
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._live: np.ndarray | None = None  # points with a valid filter state
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float, visible: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        vis = np.ones(len(x), bool) if visible is None else np.asarray(visible, bool)
        if self._x is None or self._dx is None or self._live is None or self._t is None or t <= self._t:
            # First sample (or time went backwards: a new source) -> start from the raw points.
            self._x, self._dx, self._live, self._t = x.copy(), np.zeros_like(x), vis.copy(), t
            return x.astype(np.float32)
        dt = t - self._t
        self._t = t
        scale = scale if scale and math.isfinite(scale) and scale > 0 else 1.0
        dx = (x - self._x) / dt
        dx_hat: np.ndarray = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        speed = np.hypot(dx_hat[:, 0], dx_hat[:, 1]) / scale
        a = np.asarray(_alpha(self.min_cutoff + self.beta * speed, dt))[:, None]
        x_hat = self._x + a * (x - self._x)
        # Points that were not live restart from the raw value; invisible points keep their old state.
        restart = vis & ~self._live
        x_hat[restart] = x[restart]
        dx_hat[restart] = 0.0
        out = np.where(vis[:, None], x_hat, x)
        self._x = np.where(vis[:, None], x_hat, self._x)
        self._dx = np.where(vis[:, None], dx_hat, self._dx)
        self._live = vis.copy()  # a missed frame breaks the run: restart when seen again
        return out.astype(np.float32)
