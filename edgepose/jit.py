"""numba for edgepose's compiled hot paths (multi-pose decoder, tracker, MQTT payload encoders).

Importing this module imports numba (raising ImportError where it is missing,
and also when ``NUMBA_DISABLE_JIT=1`` would turn compiled code into slow
Python: callers then take their numpy path) and points numba's on-disk cache
at ``NUMBA_CACHE_DIR`` if set, else ``<edgepose cache>/numba``
(``EDGEPOSE_CACHE_DIR`` or the user cache dir). numba's own default, beside
the installed sources, is read-only under systemd's ``ProtectSystem=strict``
and in system installs, and its fallback (the home directory) is hidden by
``ProtectHome``. ``python -m edgepose.jit`` compiles every compiled path into that cache
(first boot runs it as the service's user).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numba

if numba.config.DISABLE_JIT:
    raise ImportError("NUMBA_DISABLE_JIT is set")


def cache_dir() -> Path:
    """Where numba keeps compiled code: ``NUMBA_CACHE_DIR``, else ``<edgepose cache>/numba``."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    from .model.zoo import cache_root

    return cache_root() / "numba"


if not numba.config.CACHE_DIR:
    numba.config.CACHE_DIR = str(cache_dir())


def njit(fn: Callable | None = None, *, signature: str | None = None, nogil: bool = True, inline: str = "never") -> Any:
    """``numba.njit`` with the on-disk cache (compile once per machine), by default without the GIL.

    With ``signature`` the function is compiled (or loaded) when decorated, and a call with
    other argument types raises TypeError instead of compiling a new version mid-stream.
    ``nogil=False`` for calls of a microsecond or so: releasing the GIL hands it to any waiting
    thread (paho's network loop, the frame reader), and taking it back costs more than the call.
    ``inline="always"`` for small helpers: inlined where called, so that literal arguments become
    constants there.
    """
    if fn is None:
        return lambda f: njit(f, signature=signature, nogil=nogil, inline=inline)
    sig = () if signature is None else (signature,)
    try:
        return numba.njit(*sig, cache=True, nogil=nogil, inline=inline)(fn)
    except RuntimeError:  # no usable cache directory: compile at every start instead
        return numba.njit(*sig, nogil=nogil, inline=inline)(fn)


#: How long one compiled path may take to compile before systemd must hear from a starting service again:
#: a generous bound for the slowest board (a Pi Zero 2 W compiles the decoder in minutes).
COMPILE_ALLOWANCE_S = 600


def expect_compile(what: str) -> None:
    """Before loading ``what`` from the cache or compiling it: a service still starting under systemd asks
    for :data:`COMPILE_ALLOWANCE_S` more (a cold cache, after a new version, compiles for minutes on a slow
    board; first boot compiles everything, but only for the version it installed)."""
    from .service.notify import extend_startup

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


def warm_up_all() -> list[tuple[str, float, str]]:
    """Compile (or load) every compiled path into :func:`cache_dir`: ``[(what, seconds, how), ...]``.

    First boot runs it (``python -m edgepose.jit``) as the service's user with the service's cache
    directory: on a slow board the first compile takes minutes, longer than the unit may take to start.
    """
    from .decode import compiled

    done = []
    for dtype in compiled.COMMON_DTYPES:  # float models and uint8 ones (Coral, Edge TPU)
        seconds, how = compiled.warm_up(dtype)
        done.append((f"multi-pose decoder ({dtype} heads)", seconds, how))
    t = time.perf_counter()
    from .sinks import payloads_jit  # compiles (or loads) its explicit signatures on import

    done.append(("MQTT/JSONL payload writers", time.perf_counter() - t, payloads_jit.load_kind()))
    from .tracking import compiled as tracking

    seconds, how = tracking.warm_up()
    done.append(("tracker", seconds, how))
    return done


if __name__ == "__main__":
    for what, seconds, how in warm_up_all():
        print(f"{what}: {how} in {seconds:.1f} s ({cache_dir()})")
