"""numba for edgepose's one compiled hot path, the multi-pose decoder (:mod:`edgepose.decode.compiled`).

Importing this module imports numba (raising ImportError where it is missing,
and also when ``NUMBA_DISABLE_JIT=1`` would turn compiled code into slow
Python: callers then take their numpy path) and points numba's on-disk cache
at :func:`edgepose.paths.numba_cache_dir` (``NUMBA_CACHE_DIR`` if set, else
``<edgepose cache>/numba``). numba's own default, beside
the installed sources, is read-only under systemd's ``ProtectSystem=strict``
and in system installs, and its fallback (the home directory) is hidden by
``ProtectHome``. ``edgepose compile`` compiles the decoder into that cache
(first boot runs it as the service's user).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numba

from .paths import numba_cache_dir
from .systemd import extend_startup

if numba.config.DISABLE_JIT:
    raise ImportError("NUMBA_DISABLE_JIT is set")


if not numba.config.CACHE_DIR:
    numba.config.CACHE_DIR = str(numba_cache_dir())


def njit(fn: Callable) -> Any:
    """``numba.njit`` with the on-disk cache (compile once per machine) and without the GIL (the frame
    reader and paho's network thread run while a frame decodes)."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no usable cache directory: compile at every start instead
        return numba.njit(nogil=True)(fn)


#: How long one compiled path may take to compile before systemd must hear from a starting service again:
#: a generous bound for the slowest board (a Pi Zero 2 W compiles the decoder in minutes).
COMPILE_ALLOWANCE_S = 600


def expect_compile(what: str) -> None:
    """Before loading ``what`` from the cache or compiling it: a service still starting under systemd asks
    for :data:`COMPILE_ALLOWANCE_S` more (a cold cache, after a new version, compiles for minutes on a slow
    board; first boot compiles everything, but only for the version it installed)."""
    extend_startup(COMPILE_ALLOWANCE_S, f"loading or compiling the {what} (minutes on a slow board when not cached)")


def first_call(dispatcher: Any, call: Callable[[], Any], what: str = "compiled code") -> tuple[float, str]:
    """Run ``call`` (which calls ``dispatcher``); ``(seconds, "compiled" | "loaded from cache" | "ready")``."""

    def counts() -> tuple[int, int]:
        st = dispatcher.stats
        return sum(st.cache_hits.values()), sum(st.cache_misses.values())

    expect_compile(what)
    before = counts()
    t = time.perf_counter()
    call()
    seconds = time.perf_counter() - t
    hits, misses = (a - b for a, b in zip(counts(), before))
    return seconds, "compiled" if misses else "loaded from cache" if hits else "ready"
