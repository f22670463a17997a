"""Compiled writers of the ``poses`` payload's people (numba): every person in one call, in C speed.

They write exactly the bytes of :mod:`edgepose.sinks.payloads`' Python
encoders (tests compare them on random and edge-case poses): the JSON people
array as ``%.{d}f`` formats it, the binary person records as ``struct`` packs
them. Python's per-value formatting and numpy's per-call overhead are what the
publishing path paid for, not the arithmetic. Importing this module imports
numba (see :mod:`edgepose.jit`); :func:`warm_up` compiles or loads the cache.

Rounding matches Python's: keypoints and scores are float32 (:class:`Pose`), so
``v * 10**d`` is exact in float64 and ``rint`` of it rounds the exact value
half to even, as ``%.{d}f`` does. The pose score (float64) is rounded the same
way unless it sits within 1e-6 of a decimal tie, where the caller's Python
``round`` decides (the kernel reports it).
"""
from __future__ import annotations

import numpy as np

from ..jit import first_call, njit
from ..types import KEYPOINT_NAMES, NUM_KEYPOINTS

_PREFIXES = [f'"{name}":['.encode() for name in KEYPOINT_NAMES]
# Global arrays are compile-time constants for numba (no argument to unbox per call).
NAMES = np.frombuffer(b"".join(_PREFIXES), np.uint8).copy()
NAME_ENDS = np.cumsum([0] + [len(p) for p in _PREFIXES]).astype(np.int64)
SCORE = np.frombuffer(b'{"score":', np.uint8).copy()
ID = np.frombuffer(b',"id":', np.uint8).copy()
KEYPOINTS = np.frombuffer(b',"keypoints":{', np.uint8).copy()
#: Bytes of one binary person record ("<iH" + 34 int16 + 17 uint8).
RECORD = 4 + 2 + 4 * NUM_KEYPOINTS + NUM_KEYPOINTS


@njit
def _digits(buf, o, k):
    """Decimal digits of the int ``k >= 0`` at ``buf[o:]``; returns the new end."""
    if k == 0:
        buf[o] = 48
        return o + 1
    start = o
    while k > 0:
        buf[o] = 48 + k % 10
        k //= 10
        o += 1
    i, j = start, o - 1
    while i < j:
        buf[i], buf[j] = buf[j], buf[i]
        i += 1
        j -= 1
    return o


@njit
def _fixed(buf, o, v, nd):
    """``"%.{nd}f" % v`` at ``buf[o:]`` (non-finite -> 0, as the Python encoder); needs ``|v| * 10**nd < 2**52``."""
    if not np.isfinite(v):
        v = 0.0
    scale = 10**nd
    y = np.rint(v * scale)
    if np.signbit(v):  # "%.1f" % -0.04 == "-0.0"
        buf[o] = 45
        o += 1
    k = np.int64(abs(y))
    o = _digits(buf, o, k // scale)
    if nd > 0:
        buf[o] = 46
        f = k % scale
        for d in range(nd, 0, -1):
            buf[o + d] = 48 + f % 10
            f //= 10
        o += nd + 1
    return o


@njit
def _copy(buf, o, src, a, b):
    for i in range(a, b):
        buf[o] = src[i]
        o += 1
    return o


@njit
def people_json(kp, sc, meta, nd):
    """The ``people`` array's items: ``(bytes as uint8, ok)``; not ok -> use the Python encoder.

    ``kp`` (n, 17, 2) float32, ``sc`` (n, 17) float32, ``meta`` (n, 2) float64: pose score, track id (-1: none).
    """
    n, k = sc.shape
    limit = 2.0**52 / 10**nd
    for i in range(n):
        s = meta[i, 0]
        if np.isfinite(s) and abs(s) >= 1e11:
            return np.empty(0, np.uint8), False
        for q in range(k):
            if abs(np.float64(kp[i, q, 0])) >= limit or abs(np.float64(kp[i, q, 1])) >= limit:
                return np.empty(0, np.uint8), False
    buf = np.empty(n * (k * (24 + 3 * (24 + nd)) + 96), np.uint8)
    o = 0
    for i in range(n):
        if i:
            buf[o] = 44
            o += 1
        o = _copy(buf, o, SCORE, 0, SCORE.size)
        # repr(round(score, 4)): the four-decimal form without trailing zeros (keeping one)
        s = meta[i, 0]
        if not np.isfinite(s):
            s = 0.0
        y = s * 1e4
        r = np.rint(y)
        if abs(abs(y - r) - 0.5) < 1e-6:  # at a decimal tie: only Python's round() knows the exact value
            return np.empty(0, np.uint8), False
        o = _fixed(buf, o, r / 1e4, 4)
        while buf[o - 1] == 48 and buf[o - 2] != 46:
            o -= 1
        if meta[i, 1] >= 0:
            o = _copy(buf, o, ID, 0, ID.size)
            o = _digits(buf, o, np.int64(meta[i, 1]))
        o = _copy(buf, o, KEYPOINTS, 0, KEYPOINTS.size)
        for q in range(k):
            o = _copy(buf, o, NAMES, NAME_ENDS[q], NAME_ENDS[q + 1])
            o = _fixed(buf, o, np.float64(kp[i, q, 0]), nd)
            buf[o] = 44
            o = _fixed(buf, o + 1, np.float64(kp[i, q, 1]), nd)
            buf[o] = 44
            o = _fixed(buf, o + 1, np.float64(sc[i, q]), 3)
            buf[o] = 93
            buf[o + 1] = 44 if q < k - 1 else 125
            o += 2
        buf[o] = 125
        o += 1
    return buf[:o], True


@njit
def _clip_round(v, lo, hi):
    if not np.isfinite(v):
        return 0
    return np.int64(min(max(np.rint(v), lo), hi))


@njit
def people_binary(kp, sc, meta):
    """The binary person records (see :mod:`edgepose.sinks.payloads`), little-endian, as uint8."""
    n, k = sc.shape
    buf = np.empty(n * RECORD, np.uint8)
    for i in range(n):
        o = i * RECORD
        ident = np.int64(meta[i, 1]) & 0xFFFFFFFF
        for b in range(4):
            buf[o + b] = (ident >> (8 * b)) & 0xFF
        s = meta[i, 0]
        score = _clip_round(min(max(s, 0.0), 1.0) * 65535.0, 0.0, 65535.0)
        buf[o + 4] = score & 0xFF
        buf[o + 5] = score >> 8
        o += 6
        for q in range(k):
            for c in range(2):
                w = _clip_round(np.float64(kp[i, q, c]) * 4.0, -32768.0, 32767.0) & 0xFFFF
                buf[o] = w & 0xFF
                buf[o + 1] = w >> 8
                o += 2
        for q in range(k):
            buf[o] = _clip_round(np.float64(sc[i, q]) * 255.0, 0.0, 255.0)
            o += 1
    return buf


def warm_up() -> tuple[float, str]:
    """Compile or load both writers now: ``(seconds, "compiled" | "loaded from cache" | "ready")``."""
    kp = np.zeros((1, NUM_KEYPOINTS, 2), np.float32)
    sc = np.zeros((1, NUM_KEYPOINTS), np.float32)
    meta = np.array([[0.5, 1.0]])
    dt_b, how_b = first_call(people_binary, lambda: people_binary(kp, sc, meta))
    dt_j, how_j = first_call(people_json, lambda: people_json(kp, sc, meta, 1))
    how = "compiled" if "compiled" in (how_j, how_b) else how_j
    return dt_j + dt_b, how
