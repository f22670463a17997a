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

import math

import numpy as np

from ..jit import njit
from ..types import KEYPOINT_NAMES, NO_TRACK_ID, NUM_KEYPOINTS

_PREFIXES = [f'"{name}":['.encode() for name in KEYPOINT_NAMES]
# Global arrays are compile-time constants for numba (no argument to unbox per call).
#: Each keypoint's '"name":[' padded to NAME_WIDTH bytes: copied whole (a fixed-length loop, no
#: branch on the length), the end then moves by the true length NAME_LENGTHS.
NAME_WIDTH = 24
NAMES = np.array([np.frombuffer(p.ljust(NAME_WIDTH, b" "), np.uint8) for p in _PREFIXES])
NAME_LENGTHS = np.array([len(p) for p in _PREFIXES], np.int64)
SCORE = np.frombuffer(b'{"score":', np.uint8).copy()
ID = np.frombuffer(b',"id":', np.uint8).copy()
KEYPOINTS = np.frombuffer(b',"keypoints":{', np.uint8).copy()
TS = np.frombuffer(b',"ts":', np.uint8).copy()
WIDTH = np.frombuffer(b',"width":', np.uint8).copy()
HEIGHT = np.frombuffer(b',"height":', np.uint8).copy()
PEOPLE = np.frombuffer(b',"people":[', np.uint8).copy()
POW10 = np.array([10**i for i in range(19)], np.int64)
#: Bytes of one binary person record ("<iH" + 34 int16 + 17 uint8).
RECORD = 4 + 2 + 4 * NUM_KEYPOINTS + NUM_KEYPOINTS


#: Upper bound of one person's JSON (17 keypoints of 3 numbers, up to 24 digits each).
JSON_MAX = NUM_KEYPOINTS * (24 + 3 * 30) + 96
#: Upper bound of the header after its prefix (frame, width, height up to 19 digits, ts 16 characters,
#: the key names) and the closing "]}".
HEAD_MAX = 160
#: "00" .. "99": two digits per division.
PAIRS = np.frombuffer(b"".join(b"%02d" % i for i in range(100)), np.uint8).copy()
#: 0 .. 9999 as 4 bytes, digits first (then spaces), and their lengths: most whole parts in one
#: step without a branch per digit count, which mispredicts on real coordinates.
DIGITS4 = np.array([np.frombuffer(str(i).encode().ljust(4), np.uint8) for i in range(10000)])
DIGITS4_LEN = np.array([len(str(i)) for i in range(10000)], np.uint8)
#: 000 .. 999: the three decimals of a keypoint score.
DIGITS3 = np.array([np.frombuffer(b"%03d" % i, np.uint8) for i in range(1000)])
#: "0.000" .. "1.000": a keypoint score in [0, 1] as ``%.3f`` writes it, in one 5-byte copy.
SCORE5 = np.array([np.frombuffer(b"%.3f" % (i / 1000), np.uint8) for i in range(1001)])
#: The track id that stands for none (refused as an id: see person_json), as a PoseBlock stores it.
NO_ID = NO_TRACK_ID
#: Slack past the written end that the writers may scribble on (fixed-length copies), beyond the payload's bound.
SLACK = 32

# Every buffer index goes through _u: numba checks a signed index for wrap-around (a[-1]) on
# each access, which cost the writers more than the formatting itself. Do no arithmetic on _u's result
# (uint64 mixed with int64 is float64 in numba).
_u = np.uint64


@njit
def _digits(buf, o, k):
    """Decimal digits of the int ``k >= 0`` at ``buf[o:]``; returns the new end (may write up to 4 bytes)."""
    if k < 10000:
        for j in range(4):
            buf[_u(o + j)] = DIGITS4[_u(k), j]
        return o + np.int64(DIGITS4_LEN[_u(k)])
    n = 2
    while n < 19 and k >= POW10[_u(n)]:
        n += 1
    p = o + n
    while k >= 100:
        r = 2 * (k % 100)
        k //= 100
        p -= 2
        buf[_u(p)] = PAIRS[_u(r)]
        buf[_u(p + 1)] = PAIRS[_u(r + 1)]
    if k >= 10:
        buf[_u(p - 2)] = PAIRS[_u(2 * k)]
        buf[_u(p - 1)] = PAIRS[_u(2 * k + 1)]
    else:
        buf[_u(p - 1)] = 48 + k
    return o + n


@njit(inline="always")  # the one helper inlined by numba (literal nd/div fold there); more cost 10 s of compiling
def _fixed(buf, o, v, nd, scale, div):
    """``"%.{nd}f" % v`` at ``buf[o:]`` (non-finite -> 0, as the Python encoder); ``scale = 10.0**nd``,
    ``div = 10**nd`` (constants where the caller passes literals: division by a constant is a multiply,
    and the branches on ``nd`` fold away); needs ``|v| * scale < 2**52``."""
    if not np.isfinite(v):
        v = 0.0
    # Unsigned: a division by a constant is then a multiply and a shift, with no floor correction for
    # negatives (a quarter of a coordinate's time).
    k = np.uint64(abs(np.rint(v * scale)))
    if np.signbit(v):  # "%.1f" % -0.04 == "-0.0"
        buf[_u(o)] = 45
        o += 1
    if nd == 0:
        return _digits(buf, o, np.int64(k))
    d = np.uint64(div)
    whole = k // d
    frac = np.int64(k - whole * d)
    o = _digits(buf, o, np.int64(whole))
    buf[_u(o)] = 46
    if nd == 1:
        buf[_u(o + 1)] = 48 + frac
        return o + 2
    if nd == 2:
        buf[_u(o + 1)] = PAIRS[_u(2 * frac)]
        buf[_u(o + 2)] = PAIRS[_u(2 * frac + 1)]
        return o + 3
    if nd == 3:
        for j in range(3):
            buf[_u(o + 1 + j)] = DIGITS3[_u(frac), j]
        return o + 4
    end = o + 1 + nd
    for p in range(end - 1, o, -1):
        buf[_u(p)] = 48 + frac % 10
        frac //= 10
    return end


@njit
def _copy(buf, o, src, a, b):
    for i in range(a, b):
        buf[_u(o)] = src[_u(i)]
        o += 1
    return o


@njit
def _keypoints_json(buf, o, kp, sc, nd, scale, div, limit):
    """The keypoints object's members; -1 (written up to there) at a value beyond ``limit`` (1e12 for
    scores), checked before it is written, so that no value can write past ``JSON_MAX``."""
    k = sc.shape[0]
    for q in range(k):
        x = np.float64(kp[_u(q), 0])
        y = np.float64(kp[_u(q), 1])
        s = np.float64(sc[_u(q)])
        if abs(x) >= limit or abs(y) >= limit or abs(s) >= 1e12:
            return -1
        for j in range(NAME_WIDTH):
            buf[_u(o + j)] = NAMES[_u(q), j]
        o += NAME_LENGTHS[_u(q)]
        o = _fixed(buf, o, x, nd, scale, div)
        buf[_u(o)] = 44
        o = _fixed(buf, o + 1, y, nd, scale, div)
        buf[_u(o)] = 44
        if s <= 1.0 and not np.signbit(s):  # the usual score: one table copy
            t = np.int64(np.rint(s * 1000.0))
            for j in range(5):
                buf[_u(o + 1 + j)] = SCORE5[_u(t), j]
            o += 6
        else:
            o = _fixed(buf, o + 1, s, 3, 1000.0, 1000)
        buf[_u(o)] = 93
        buf[_u(o + 1)] = 44 if q < k - 1 else 125
        o += 2
    return o


@njit(signature="intp(uint8[::1], intp, float32[:, ::1], float32[::1], float64, int64, intp)", nogil=False)
def person_json(buf, o, kp, sc, score, ident, nd):
    """One person's JSON object at ``buf[o:]`` (after a comma unless it opens the array: ``o == 0`` or
    ``buf[o - 1]`` is ``[``), without an id for ``ident == NO_ID``, then the payload's closing ``]}``;
    returns the new end (before that ``]}``),
    or -1 for a person the Python encoder must write (a pose score at a decimal tie, ``|x| >= 2**52 / 10**nd``,
    arrays not of 17 keypoints). Nothing here checks bounds: these checks keep every write
    inside the caller's ``JSON_MAX`` per person and every table index in range. (An argument fewer
    is a few per cent of the call: the dispatcher's handing over is most of its cost.)"""
    if sc.shape[0] != NUM_KEYPOINTS or kp.shape[0] != NUM_KEYPOINTS or kp.shape[1] != 2:
        return -1
    s = score if np.isfinite(score) else 0.0
    if abs(s) >= 1e5:
        return -1
    # repr(round(score, 4)): the four-decimal form without trailing zeros (keeping one). Below 1e5 the
    # product is within 2e-7 of the exact value, so only a near-tie can round differently from round().
    y = s * 1e4
    r = np.rint(y)
    if abs(abs(y - r) - 0.5) < 1e-6:
        return -1
    if o and buf[_u(o - 1)] != 91:
        buf[_u(o)] = 44
        o += 1
    o = _copy(buf, o, SCORE, 0, SCORE.size)
    o = _fixed(buf, o, r / 1e4, 4, 1e4, 10000)
    while buf[_u(o - 1)] == 48 and buf[_u(o - 2)] != 46:
        o -= 1
    if ident != NO_ID:
        o = _copy(buf, o, ID, 0, ID.size)
        if ident < 0:
            buf[_u(o)] = 45
            o += 1
        o = _digits(buf, o, abs(ident))
    o = _copy(buf, o, KEYPOINTS, 0, KEYPOINTS.size)
    # The usual digit counts as literals, so that their divisions compile to multiplies.
    if nd == 1:
        o = _keypoints_json(buf, o, kp, sc, 1, 10.0, 10, 2.0**52 / 10.0)
    elif nd == 2:
        o = _keypoints_json(buf, o, kp, sc, 2, 100.0, 100, 2.0**52 / 100.0)
    else:
        scale = 10.0**nd
        o = _keypoints_json(buf, o, kp, sc, nd, scale, POW10[_u(nd)], 2.0**52 / scale)
    if o < 0:
        return -1
    buf[_u(o)] = 125
    buf[_u(o + 1)] = 93  # the closing "]}" after each person (the next one writes over it), so the
    buf[_u(o + 2)] = 125  # caller takes buf[:end + 2] as it is
    return o + 1


@njit
def _round4(a):
    """``round(a, 4) * 10**4`` as Python rounds it (the exact binary value, correctly rounded, ties to even)
    for ``0 <= a < 7e9``; -1 where this cannot tell (below 8, within 1e-6 of a tie: never in practice)."""
    if a >= 8.0:
        # Exactly, in integers: the fraction is a multiple of a's ulp 2**-q (q <= 49 from 8 up), so
        # fraction * 10**4 = n * 10**4 / 2**q with n * 10**4 < 2**63.
        whole = math.floor(a)
        _, ex = math.frexp(a)
        q = 53 - ex
        num = np.int64(math.ldexp(a - whole, q)) * 10000
        k = num >> q
        rem = num - (k << q)
        half = np.int64(1) << (q - 1)
        if rem > half or (rem == half and k & 1):
            k += 1
        return np.int64(whole) * 10000 + k
    # Below 8 the product is within 2**-37 of the exact one: rint rounds it as Python does but at a near-tie.
    y = a * 1e4
    r = np.rint(y)
    if abs(abs(y - r) - 0.5) < 1e-6:
        return -1
    return np.int64(r)


@njit(signature="intp(uint8[::1], uint8[::1], int64, float64, int64, int64)", nogil=False)
def head_json(buf, prefix, frame, ts, width, height):
    """The ``poses`` payload up to its people array at ``buf[0:]``: ``prefix`` (``{"v":..,"device":..,"frame":``),
    then the frame index, ``ts`` as ``repr(round(ts, 4))``, width and height, then the payload's closing
    ``]}`` (people written after overwrite it); returns the end before that ``]}``, or -1 where
    Python must write it (a ``ts`` beyond the exact range, or below 8 s within 1e-6 of a decimal tie; a
    negative frame or size)."""
    if not np.isfinite(ts) or abs(ts) >= 7e9 or frame < 0 or width < 0 or height < 0:
        return -1
    # Below 7e9 s (the year 2191 as epoch time) the four-decimal value has at most 14 significant digits,
    # which is what repr writes (no shorter decimal of <= 15 digits maps to the same double).
    k = _round4(abs(ts))
    if k < 0:
        return -1
    o = _copy(buf, 0, prefix, 0, prefix.size)
    o = _digits(buf, o, frame)
    o = _copy(buf, o, TS, 0, TS.size)
    if np.signbit(ts):  # round(-x, 4) == -round(x, 4): repr(round(-0.00001, 4)) == "-0.0"
        buf[_u(o)] = 45
        o += 1
    o = _digits(buf, o, k // 10000)
    buf[_u(o)] = 46
    frac = k % 10000
    n = 4
    while n > 1 and frac % 10 == 0:  # repr's shortest form: trailing zeros dropped, one digit kept
        frac //= 10
        n -= 1
    for p in range(o + n, o, -1):
        buf[_u(p)] = 48 + frac % 10
        frac //= 10
    o += n + 1
    o = _copy(buf, o, WIDTH, 0, WIDTH.size)
    o = _digits(buf, o, width)
    o = _copy(buf, o, HEIGHT, 0, HEIGHT.size)
    o = _digits(buf, o, height)
    o = _copy(buf, o, PEOPLE, 0, PEOPLE.size)
    buf[_u(o)] = 93  # "]}": an empty people array, which the people written after overwrite
    buf[_u(o + 1)] = 125
    return o


@njit
def _rows(kp, sc, score, ids):
    """The number of people in a block's arrays, or -1 where they disagree (nothing after checks bounds)."""
    n = score.shape[0]
    return n if kp.shape[0] == n and sc.shape[0] == n and ids.shape[0] == n else -1


# A frame whose people are one PoseBlock's rows is written in one call: a call from Python costs about
# as much as writing a person (the dispatcher unboxes each argument), the first of a frame more (its
# code and data cold after paho's publish), and Python's per-person attribute reads go too.
@njit(signature="intp(uint8[::1], uint8[::1], int64, float64, int64, int64, float32[:, :, ::1], float32[:, ::1], float64[::1], int64[::1], intp)",
      nogil=False)
def frame_json(buf, prefix, frame, ts, width, height, kp, sc, score, ids, nd):
    """The whole ``poses`` payload of a frame whose people are these arrays' rows (a PoseBlock's:
    ``ids`` NO_ID for none): :func:`head_json`, then :func:`person_json` of each row; returns the end
    before the closing ``]}``, or -1 where either declines or the arrays disagree on the number of people."""
    n = _rows(kp, sc, score, ids)
    if n < 0:
        return -1
    o = head_json(buf, prefix, frame, ts, width, height)
    for i in range(n):
        if o < 0:
            break
        o = person_json(buf, o, kp[i], sc[i], score[i], ids[i], nd)
    return o


@njit
def _clip_round(v, lo, hi):
    if not np.isfinite(v):
        return 0
    return np.int64(min(max(np.rint(v), lo), hi))


@njit(signature="intp(uint8[::1], intp, float32[:, ::1], float32[::1], float64, int64)", nogil=False)
def person_binary(buf, o, kp, sc, score, ident):
    """One binary person record (see :mod:`edgepose.sinks.payloads`) at ``buf[o:]``; returns the new end, or -1
    for arrays not of 17 keypoints (the record's size: nothing here checks bounds)."""
    k = sc.shape[0]
    if k != NUM_KEYPOINTS or kp.shape[0] != NUM_KEYPOINTS or kp.shape[1] != 2:
        return -1
    ident &= 0xFFFFFFFF
    for b in range(4):
        buf[_u(o + b)] = (ident >> (8 * b)) & 0xFF
    s = 0.0 if np.isnan(score) else min(max(score, 0.0), 1.0)  # an infinite score saturates
    v = _clip_round(s * 65535.0, 0.0, 65535.0)
    buf[_u(o + 4)] = v & 0xFF
    buf[_u(o + 5)] = v >> 8
    o += 6
    for q in range(k):
        for c in range(2):
            w = _clip_round(np.float64(kp[_u(q), c]) * 4.0, -32768.0, 32767.0) & 0xFFFF
            buf[_u(o)] = w & 0xFF
            buf[_u(o + 1)] = w >> 8
            o += 2
    for q in range(k):
        buf[_u(o)] = _clip_round(np.float64(sc[_u(q)]) * 255.0, 0.0, 255.0)
        o += 1
    return o


@njit(signature="intp(uint8[::1], int64, float64, int64, int64, int64)", nogil=False)
def head_binary(buf, frame, ts, width, height, n):
    """The binary payload's 21-byte header (see :mod:`edgepose.sinks.payloads`) at ``buf[0:]``; returns 21,
    or -1 for what ``struct`` refuses (a negative size, more than 255 people): Python then says what is
    wrong. ``ts`` goes in the machine's byte order: the caller uses this on little-endian machines only."""
    if width < 0 or height < 0 or n < 0 or n > 255:
        return -1
    buf[0] = 69  # "EP", version 1, kind 1 (poses)
    buf[1] = 80
    buf[2] = 1
    buf[3] = 1
    f = frame & 0xFFFFFFFF
    for b in range(4):
        buf[_u(4 + b)] = (f >> (8 * b)) & 0xFF
    buf[8:16].view(np.float64)[0] = ts
    w = min(width, 0xFFFF)
    h = min(height, 0xFFFF)
    buf[16] = w & 0xFF
    buf[17] = w >> 8
    buf[18] = h & 0xFF
    buf[19] = h >> 8
    buf[20] = n
    return 21


@njit(signature="intp(uint8[::1], int64, float64, int64, int64, float32[:, :, ::1], float32[:, ::1], float64[::1], int64[::1])", nogil=False)
def frame_binary(buf, frame, ts, width, height, kp, sc, score, ids):
    """The whole binary payload of a frame whose people are these arrays' rows (as :func:`frame_json`);
    returns its length, or -1 where the header declines or the arrays disagree on the number of people."""
    n = _rows(kp, sc, score, ids)
    if n < 0:
        return -1
    o = head_binary(buf, frame, ts, width, height, n)
    for i in range(n):
        if o < 0:
            break
        ident = ids[i]
        o = person_binary(buf, o, kp[i], sc[i], score[i], -1 if ident == NO_ID else ident)
    return o


WRITERS = (person_json, person_binary, head_json, head_binary, frame_json, frame_binary)


def load_kind() -> str:
    """``"compiled"`` if importing this module compiled the writers (once per machine), else ``"loaded from cache"``."""
    misses = sum(sum(d.stats.cache_misses.values()) for d in WRITERS)
    return "compiled" if misses else "loaded from cache"
