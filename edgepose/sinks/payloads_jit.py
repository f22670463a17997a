"""Compiled writers of the ``poses`` payload's people (numba): one call per person, no per-value Python.

They write exactly the bytes of :mod:`edgepose.sinks.payloads`' Python
encoders (tests compare them on random and edge-case poses): the JSON people
array as ``%.{d}f`` formats it, the binary person records as ``struct`` packs
them. Python's per-value formatting and numpy's per-call overhead are what the
publishing path paid for, not the arithmetic. Importing this module imports
numba (see :mod:`edgepose.jit`) and compiles the writers for their signatures, or
loads them from the cache (:func:`load_kind` tells which).

Rounding matches Python's: keypoints and scores are float32 (:class:`Pose`), so
``v * 10**d`` is exact in float64 and ``rint`` of it rounds the exact value
half to even, as ``%.{d}f`` does. The pose score (float64) is rounded the same
way unless it sits within 1e-6 of a decimal tie, where the caller's Python
``round`` decides (the kernel reports it).
"""
from __future__ import annotations

import numpy as np

from ..jit import njit
from ..types import KEYPOINT_NAMES, NUM_KEYPOINTS

_PREFIXES = [f'"{name}":['.encode() for name in KEYPOINT_NAMES]
# Global arrays are compile-time constants for numba (no argument to unbox per call).
NAMES = np.frombuffer(b"".join(_PREFIXES), np.uint8).copy()
NAME_ENDS = np.cumsum([0] + [len(p) for p in _PREFIXES]).astype(np.int64)
SCORE = np.frombuffer(b'{"score":', np.uint8).copy()
ID = np.frombuffer(b',"id":', np.uint8).copy()
KEYPOINTS = np.frombuffer(b',"keypoints":{', np.uint8).copy()
POW10 = np.array([10**i for i in range(19)], np.int64)
#: Bytes of one binary person record ("<iH" + 34 int16 + 17 uint8).
RECORD = 4 + 2 + 4 * NUM_KEYPOINTS + NUM_KEYPOINTS


#: Upper bound of one person's JSON (17 keypoints of 3 numbers, up to 24 digits each).
JSON_MAX = NUM_KEYPOINTS * (24 + 3 * 30) + 96


@njit
def _digits(buf, o, k):
    """Decimal digits of the int ``k >= 0`` at ``buf[o:]``; returns the new end."""
    n = 1
    while n < 19 and k >= POW10[n]:
        n += 1
    for p in range(o + n - 1, o - 1, -1):
        buf[p] = 48 + k % 10
        k //= 10
    return o + n


@njit
def _fixed(buf, o, v, nd, scale):
    """``"%.{nd}f" % v`` at ``buf[o:]`` (non-finite -> 0, as the Python encoder); ``scale = 10.0**nd``
    (computed once per person: pow is a call); needs ``|v| * scale < 2**52``."""
    if not np.isfinite(v):
        v = 0.0
    k = np.int64(abs(np.rint(v * scale)))
    if np.signbit(v):  # "%.1f" % -0.04 == "-0.0"
        buf[o] = 45
        o += 1
    # The digits of k (at least nd + 1), written backwards from the end, the point before the last nd.
    n = 1
    while n < 19 and k >= POW10[n]:
        n += 1
    n = max(n, nd + 1)
    end = o + n + (1 if nd > 0 else 0)
    p = end - 1
    for w in range(n):
        if nd > 0 and w == nd:
            buf[p] = 46
            p -= 1
        buf[p] = 48 + k % 10
        k //= 10
        p -= 1
    return end


@njit
def _copy(buf, o, src, a, b):
    for i in range(a, b):
        buf[o] = src[i]
        o += 1
    return o


@njit(signature="intp(uint8[::1], intp, float32[:, ::1], float32[::1], float64, int64, boolean, intp)")
def person_json(buf, o, kp, sc, score, ident, has_id, nd):
    """One person's JSON object at ``buf[o:]`` (after a comma unless ``o == 0``); returns the new end,
    or -1 for a person the Python encoder must write (a pose score at a decimal tie, ``|x| >= 2**52 / 10**nd``)."""
    k = sc.shape[0]
    scale = 10.0**nd
    limit = 2.0**52 / scale
    s = score if np.isfinite(score) else 0.0
    if abs(s) >= 1e5:
        return -1
    for q in range(k):
        if abs(np.float64(kp[q, 0])) >= limit or abs(np.float64(kp[q, 1])) >= limit:
            return -1
    # repr(round(score, 4)): the four-decimal form without trailing zeros (keeping one). Below 1e5 the
    # product is within 2e-7 of the exact value, so only a near-tie can round differently from round().
    y = s * 1e4
    r = np.rint(y)
    if abs(abs(y - r) - 0.5) < 1e-6:
        return -1
    if o:
        buf[o] = 44
        o += 1
    o = _copy(buf, o, SCORE, 0, SCORE.size)
    o = _fixed(buf, o, r / 1e4, 4, 1e4)
    while buf[o - 1] == 48 and buf[o - 2] != 46:
        o -= 1
    if has_id:
        o = _copy(buf, o, ID, 0, ID.size)
        if ident < 0:
            buf[o] = 45
            o += 1
        o = _digits(buf, o, abs(ident))
    o = _copy(buf, o, KEYPOINTS, 0, KEYPOINTS.size)
    for q in range(k):
        o = _copy(buf, o, NAMES, NAME_ENDS[q], NAME_ENDS[q + 1])
        o = _fixed(buf, o, np.float64(kp[q, 0]), nd, scale)
        buf[o] = 44
        o = _fixed(buf, o + 1, np.float64(kp[q, 1]), nd, scale)
        buf[o] = 44
        o = _fixed(buf, o + 1, np.float64(sc[q]), 3, 1000.0)
        buf[o] = 93
        buf[o + 1] = 44 if q < k - 1 else 125
        o += 2
    buf[o] = 125
    return o + 1


@njit
def _clip_round(v, lo, hi):
    if not np.isfinite(v):
        return 0
    return np.int64(min(max(np.rint(v), lo), hi))


@njit(signature="intp(uint8[::1], intp, float32[:, ::1], float32[::1], float64, int64)")
def person_binary(buf, o, kp, sc, score, ident):
    """One binary person record (see :mod:`edgepose.sinks.payloads`) at ``buf[o:]``; returns the new end."""
    k = sc.shape[0]
    ident &= 0xFFFFFFFF
    for b in range(4):
        buf[o + b] = (ident >> (8 * b)) & 0xFF
    s = 0.0 if np.isnan(score) else min(max(score, 0.0), 1.0)  # an infinite score saturates
    u = _clip_round(s * 65535.0, 0.0, 65535.0)
    buf[o + 4] = u & 0xFF
    buf[o + 5] = u >> 8
    o += 6
    for q in range(k):
        for c in range(2):
            w = _clip_round(np.float64(kp[q, c]) * 4.0, -32768.0, 32767.0) & 0xFFFF
            buf[o] = w & 0xFF
            buf[o + 1] = w >> 8
            o += 2
    for q in range(k):
        buf[o] = _clip_round(np.float64(sc[q]) * 255.0, 0.0, 255.0)
        o += 1
    return o


def load_kind() -> str:
    """``"compiled"`` if importing this module compiled the writers (once per machine), else ``"loaded from cache"``."""
    misses = sum(sum(d.stats.cache_misses.values()) for d in (person_json, person_binary))
    return "compiled" if misses else "loaded from cache"
