"""Person tracking: stable IDs across frames and optional keypoint smoothing.

Two implementations of the same tracker:

* ``numba`` (:class:`~.compiled.CompiledTracker`): its per-frame work in two compiled calls, compiled
  at first use and cached on disk; about ten times faster; the default when numba imports;
* ``numpy`` (:class:`~.tracker.Tracker`): the reference, and the fallback where numba is missing or
  turned off (``NUMBA_DISABLE_JIT=1``).

``EDGEPOSE_TRACKER=auto|numba|numpy`` (environment) or ``engine=`` of :func:`make_tracker` chooses.
"""
from __future__ import annotations

import logging
import os

from ..errors import ConfigError
from .config import TrackingConfig
from .smoothing import OneEuroFilter
from .tracker import Track, Tracker

log = logging.getLogger(__name__)

TRACKER_ENV = "EDGEPOSE_TRACKER"
ENGINES = ("auto", "numba", "numpy")


def make_tracker(config: TrackingConfig | None = None, engine: str | None = None) -> Tracker:
    """The tracker for ``config``: compiled (numba, loaded or compiled now, so that no frame pays for it)
    unless ``engine`` (default ``$EDGEPOSE_TRACKER`` or ``auto``) says ``numpy`` or numba does not load."""
    want = (engine or os.environ.get(TRACKER_ENV) or "auto").strip().lower()
    if want not in ENGINES:
        raise ConfigError(f"unknown tracker engine {want!r} ({TRACKER_ENV} or engine=).", f"use one of: {', '.join(ENGINES)}.")
    if want != "numpy":
        try:
            from . import compiled
        except Exception as e:  # ImportError (also NUMBA_DISABLE_JIT), or a numba/numpy mismatch raising at import
            if want == "numba":
                raise ConfigError(f"the numba tracker was asked for but numba does not load ({type(e).__name__}: {e}).",
                                  f"install numba (pip install numba) or set {TRACKER_ENV}=numpy.") from e
            log.info("numba does not load (%s: %s): tracking with numpy (about ten times slower)", type(e).__name__, e)
        else:
            seconds, how = compiled.warm_up()
            if how == "compiled":
                log.info("numba tracker compiled in %.1f s (cached for later starts)", seconds)
            elif how == "loaded from cache":
                log.info("numba tracker loaded from its cache in %.0f ms", 1e3 * seconds)
            return compiled.CompiledTracker(config)
    return Tracker(config)


__all__ = ["ENGINES", "TRACKER_ENV", "OneEuroFilter", "Track", "Tracker", "TrackingConfig", "make_tracker"]
