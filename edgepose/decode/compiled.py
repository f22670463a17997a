"""Multi-person decoding compiled with numba: the numpy decoder's algorithm, one candidate at a time.

:mod:`edgepose.decode.multi` is the reference; this module computes the same
thing (same candidates, order, refinement steps, Coral's edge-16 channel quirk,
soft keypoint NMS, float32 arithmetic where the reference uses it) as one
compiled call per frame. Interpreter overhead, not arithmetic, is what the
numpy decoder pays for: a pose is a few hundred bilinear samples.

Importing this module imports numba (a few hundred ms; see :mod:`edgepose.jit`
for its cache directory). The first call of a process compiles (seconds, once
per machine) or loads the cache (tens to hundreds of ms): :func:`warm_up` does
it at model load so that no frame pays for it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..jit import first_call, njit
from ..types import NUM_KEYPOINTS
from .heads import Heads, QuantizedHeads
from .multi import REFINE_STEPS, DecodedPoses, _logodds, traversal_tables


@njit
def _at(table, q, y, x, ch):
    """``table[y, x, ch]`` as a real value: ``(v - zero) * scale`` in float32 with ``q = (scale, zero)``, the bits
    of the numpy dequantization; float tables come with ``(1, 0)``, for which this is ``v`` itself."""
    return (np.float32(table[y, x, ch]) - q[1]) * q[0]


@njit
def _sample(table, q, y, x, ch):
    """Bilinear sample of ``table[..., ch]`` (real values, see :func:`_at`) at grid point (y, x) inside the grid.

    As scipy's ``map_coordinates(order=1, mode="nearest")``: weights in float64,
    the far neighbour clamped on the last row/column, the result rounded to float32.
    """
    h, w = table.shape[0] - 1, table.shape[1] - 1
    fy, fx = np.float64(y), np.float64(x)
    y0, x0 = int(np.floor(fy)), int(np.floor(fx))
    ty, tx = fy - y0, fx - x0
    y1, x1 = min(y0 + 1, h), min(x0 + 1, w)
    v = (_at(table, q, y0, x0, ch) * (1.0 - ty)) * (1.0 - tx)
    v += (_at(table, q, y0, x1, ch) * (1.0 - ty)) * tx
    v += (_at(table, q, y1, x0, ch) * ty) * (1.0 - tx)
    v += (_at(table, q, y1, x1, ch) * ty) * tx
    return np.float32(v)


@njit
def _step(table, q, y, x, ch_y, ch_x, inv_stride, lim_y, lim_x):
    """(y, x) moved by the offsets sampled there, clamped to the grid (float32, as the reference)."""
    ny = _sample(table, q, y, x, ch_y) * inv_stride + y
    nx = _sample(table, q, y, x, ch_x) * inv_stride + x
    ny = min(max(ny, np.float32(0.0)), lim_y)
    nx = min(max(nx, np.float32(0.0)), lim_x)
    return ny, nx


@njit
def _grow(heat, short, mid, q, edges, root, ry, rx, inv_stride, refine_steps, pos, logit):
    """Pose from root part ``root`` at (ry, rx): positions into ``pos`` (17, 2), heatmap logits into ``logit``."""
    lim_y, lim_x = np.float32(heat.shape[0] - 1), np.float32(heat.shape[1] - 1)
    k = heat.shape[2]
    pos[root, 0], pos[root, 1] = ry, rx
    # edges[root] lists the 16 directed edges in breadth-first order from the root:
    # every parent is placed before its children.
    for e in range(edges.shape[1]):
        parent, child = edges[root, e, 0], edges[root, e, 1]
        y, x = _step(
            mid, q[2], pos[parent, 0], pos[parent, 1], edges[root, e, 2], edges[root, e, 3], inv_stride, lim_y, lim_x
        )
        for _ in range(refine_steps):
            y, x = _step(short, q[1], y, x, child, child + k, inv_stride, lim_y, lim_x)
        pos[child, 0], pos[child, 1] = y, x
    for p in range(k):
        logit[p] = _sample(heat, q[0], pos[p, 0], pos[p, 1], p)


@njit
def _decode(heat, short, mid, quant, stride, edges, max_poses, raw_threshold, score_threshold, r2, refine_steps):
    """The poses of one frame; ``heat``, ``short``, ``mid`` as the model output them (float, or integers that
    ``quant``'s ``(scale, zero)`` per head dequantize: see :func:`_at`); ``raw_threshold``: the stored heatmap
    value from which the real value reaches the score threshold's logit (:func:`_raw_threshold`)."""
    h, w, k = heat.shape
    hq, sq = quant[0], quant[1]
    min_score = np.float32(score_threshold)
    r2f = np.float32(r2)
    inv_stride = np.float32(1.0 / stride)
    fstride = np.float32(stride)
    # 1. Root candidates: cells at the threshold that no 3x3 neighbour (same part) exceeds,
    #    collected in (y, x, part) order and stably sorted best first, as the reference.
    cy = np.empty(h * w * k, np.int32)  # np.empty: no zeroing, only the peaks are written
    cx = np.empty(h * w * k, np.int32)
    cp = np.empty(h * w * k, np.int32)
    neg = np.empty(h * w * k, np.float32)
    m = 0
    for y in range(h):
        for x in range(w):
            for p in range(k):
                # Compared as stored: dequantizing is strictly increasing (integers one scale step apart
                # never round together in float32), so the stored order is the real order.
                v = heat[y, x, p]
                if v < raw_threshold:
                    continue
                s = _at(heat, hq, y, x, p)
                peak = True
                for yy in range(max(y - 1, 0), min(y + 2, h)):
                    for xx in range(max(x - 1, 0), min(x + 2, w)):
                        if heat[yy, xx, p] > v:
                            peak = False
                            break
                    if not peak:
                        break
                if peak:
                    cy[m], cx[m], cp[m], neg[m] = y, x, p, -s
                    m += 1
    order = np.argsort(neg[:m], kind="mergesort")
    # 2. Grow poses best candidate first; skip a root within the radius of the same part
    #    of an accepted pose; keep a pose whose mean keypoint score reaches the threshold.
    acc_pos = np.empty((max_poses, k, 2), np.float32)
    acc_kp = np.empty((max_poses, k), np.float32)
    acc_score = np.empty(max_poses, np.float32)
    pos = np.empty((k, 2), np.float32)
    logit = np.empty(k, np.float32)
    kp = np.empty(k, np.float32)
    lim_y, lim_x = np.float32(h - 1), np.float32(w - 1)
    count = 0
    for i in order:
        if count >= max_poses:
            break
        y, x, p = cy[i], cx[i], cp[i]
        ry = np.float32(np.float64(y) + np.float64(_at(short, sq, y, x, p) / fstride))
        rx = np.float32(np.float64(x) + np.float64(_at(short, sq, y, x, p + k) / fstride))
        ry = min(max(ry, np.float32(0.0)), lim_y)
        rx = min(max(rx, np.float32(0.0)), lim_x)
        suppressed = False
        for j in range(count):
            dy, dx = acc_pos[j, p, 0] - ry, acc_pos[j, p, 1] - rx
            if dy * dy + dx * dx <= r2f:
                suppressed = True
                break
        if suppressed:
            continue
        _grow(heat, short, mid, quant, edges, p, ry, rx, inv_stride, refine_steps, pos, logit)
        total = np.float32(0.0)
        for q in range(k):
            kp[q] = np.float32(1.0) / (np.float32(1.0) + np.exp(-logit[q]))
            total += kp[q]
        score = total / np.float32(k)
        if score < min_score:
            continue
        acc_pos[count] = pos
        acc_kp[count] = kp
        acc_score[count] = score
        count += 1
    # 3. Soft keypoint NMS: a pose's score without the parts a higher-scoring pose claims.
    rank_order = np.argsort(-acc_score[:count], kind="mergesort")
    final = np.empty(count, np.float32)
    for a in range(count):
        i = rank_order[a]
        total = np.float32(0.0)
        for q in range(k):
            claimed = False
            for b in range(a):
                j = rank_order[b]
                dy, dx = acc_pos[i, q, 0] - acc_pos[j, q, 0], acc_pos[i, q, 1] - acc_pos[j, q, 1]
                if dy * dy + dx * dx <= r2f:
                    claimed = True
                    break
            if not claimed:
                total += acc_kp[i, q]
        final[i] = total / np.float32(k)
    out = np.argsort(-final, kind="mergesort")
    kept = 0
    for i in out:
        if final[i] >= min_score:
            kept += 1
    out_pos = np.empty((kept, k, 2), np.float32)
    out_kp = np.empty((kept, k), np.float32)
    out_score = np.empty(kept, np.float32)
    o = 0
    for i in out:
        if final[i] >= min_score:
            for q in range(k):
                out_pos[o, q, 0] = acc_pos[i, q, 0] * fstride
                out_pos[o, q, 1] = acc_pos[i, q, 1] * fstride
            out_kp[o] = acc_kp[i]
            out_score[o] = final[i]
            o += 1
    return out_pos, out_kp, out_score


@lru_cache(maxsize=2)
def _edges(coral_quirk: bool) -> np.ndarray:
    """(17, 16, 4) directed edges (parent, child, ch_dy, ch_dx) per root, breadth first."""
    per_root: list[list] = [[] for _ in range(NUM_KEYPOINTS)]
    for edges, valid in traversal_tables(coral_quirk):
        for r in range(NUM_KEYPOINTS):
            per_root[r].extend(edges[r][valid[r]].tolist())
    return np.ascontiguousarray(np.array(per_root, np.int64))


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


_REAL = (np.float32(1.0), np.float32(0.0))  # (scale, zero) of a float head: its values as they are


def _tables(heads: Heads) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """The three heads as ``_decode`` reads them: a quantized model's integer arrays with their
    ``(scale, zero)`` (float32, so that dequantizing gives numpy's bits), else float32 arrays."""
    if isinstance(heads, QuantizedHeads):
        return heads.raw[0], heads.raw[1], heads.raw[2], heads.quant
    return _f32(heads.heatmaps), _f32(heads.offsets), _f32(heads.displacements), (_REAL, _REAL, _REAL)


@lru_cache(maxsize=16)
def _raw_threshold(dtype: str, scale: np.float32, zero: np.float32, thr: np.float32) -> float:
    """The least stored heatmap value whose real value (:func:`_at`) reaches ``thr``, so that the scan compares
    stored values: ``thr`` itself for a float head; past the largest value when none does."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return float(thr)
    info = np.iinfo(dt)
    v = np.arange(info.min, info.max + 1)
    reach = np.flatnonzero((v.astype(np.float32) - zero) * scale >= thr)
    return float(v[reach[0]]) if reach.size else float(info.max) + 1.0


def decode_multiple_poses(
    heads: Heads,
    max_poses: int = 10,
    score_threshold: float = 0.25,
    nms_radius: float = 20.0,
    *,
    coral_quirk: bool = True,
) -> DecodedPoses:
    """:func:`edgepose.decode.multi.decode_multiple_poses`, compiled: same arguments, same result. A
    :class:`QuantizedHeads` is read as the model output it: only the values read are dequantized."""
    stride = int(heads.stride)
    heat, short, mid, q = _tables(heads)
    pos, kp, scores = _decode(
        heat,
        short,
        mid,
        q,
        stride,
        _edges(bool(coral_quirk)),
        int(max_poses),
        _raw_threshold(heat.dtype.str, q[0][0], q[0][1], np.float32(_logodds(score_threshold))),
        float(score_threshold),
        float((nms_radius / stride) ** 2),
        REFINE_STEPS,
    )
    return DecodedPoses(pos, kp, scores)


#: The head dtypes compiled at first boot (``edgepose compile``): float models and uint8 ones
#: (Coral's, every Edge TPU model). Another (int8) compiles when such a model loads.
COMMON_DTYPES = ("float32", "uint8")


def warm_up(dtype: str = "float32") -> tuple[float, str]:
    """Compile or load the decoder for heads of ``dtype`` (float32, or a quantized model's uint8/int8) now:
    ``(seconds, "compiled" | "loaded from cache" | "ready")``."""
    rng = np.random.default_rng(0)
    h, w = 9, 11
    real = (
        rng.normal(-2.0, 3.0, (h, w, NUM_KEYPOINTS)),
        rng.normal(0, 4, (h, w, 2 * NUM_KEYPOINTS)),
        rng.normal(0, 8, (h, w, 64)),
    )
    heads: Heads
    if np.dtype(dtype) == np.float32:
        heads = Heads(real[0].astype(np.float32), real[1].astype(np.float32), real[2].astype(np.float32), 16)
    else:
        info = np.iinfo(np.dtype(dtype))
        quant = ((0.1, (info.min + info.max + 1) // 2),) * 3
        a, b, c = (np.clip(np.rint(a / 0.1) + quant[0][1], info.min, info.max).astype(dtype) for a in real)
        heads = QuantizedHeads((a, b, c), quant, 16)
    return first_call(
        _decode, lambda: decode_multiple_poses(heads, 3, 0.25, 20.0), f"multi-pose decoder ({dtype} heads)"
    )
