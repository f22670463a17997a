"""Person tracking: stable IDs across frames (:class:`~.tracker.Tracker`) and optional keypoint smoothing."""

from __future__ import annotations

from .config import TrackingConfig
from .smoothing import OneEuroFilter
from .tracker import Track, Tracker

__all__ = ["OneEuroFilter", "Track", "Tracker", "TrackingConfig"]
