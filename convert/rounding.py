"""Output-aware rounding of depthwise weights (exhaustive AdaRound for 3x3 filters).

int8 stores each depthwise filter as ``q * s`` with ``s = max|w| / 127`` per channel.
Rounding every weight to the nearest level is not the best choice for the layer's
*output*: the error of channel ``c`` is ``delta . x`` over its 3x3 input patch, so
what matters is ``E[(delta . x)^2]``. A 3x3 filter has only 2^9 = 512 ways to round
its weights down or up, so the best one under the patch covariance of the
calibration images is found exhaustively; the remaining mean error is removed from
the bias. The float weights are replaced by the chosen levels (exactly
representable, so the TFLite quantizer keeps them).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgepose.progress import bar as progress_bar

from .errors import import_tensorflow

log = logging.getLogger(__name__)

LEVELS = 127  # symmetric int8 weights, as TFLite quantizes them per channel
_BITS = np.array(list(itertools.product((0, 1), repeat=9)), np.float32)  # (512, 9)


@dataclass
class DepthwiseLayer:
    node: str
    weights: str  # Const node name, [3, 3, C, 1]
    bias: str | None  # Const node name of the following BiasAdd, if any
    input: str  # tensor feeding the layer


def _graph_index(gd) -> tuple[dict, dict[str, list]]:
    """Nodes by name, and the consumers of every node's output."""
    by_name = {n.name: n for n in gd.node}
    consumers: dict[str, list] = {}
    for n in gd.node:
        for i in n.input:
            consumers.setdefault(i.split(":")[0], []).append(n)
    return by_name, consumers


def _find_layers(gd, op: str, make, accept=None) -> list:
    """Nodes ``op`` with constant weights (whose dims ``accept`` takes), each with the bias added right after it, if any."""
    from .equalize import _resolve_const

    by_name, consumers = _graph_index(gd)
    out = []
    for n in gd.node:
        if n.op != op:
            continue
        w = _resolve_const(n.input[1], by_name)
        if w is None:
            continue
        if accept is not None and not accept([d.size for d in by_name[w].attr["value"].tensor.tensor_shape.dim]):
            continue
        users = consumers.get(n.name, [])
        bias = (
            _resolve_const(users[0].input[1], by_name)
            if len(users) == 1 and users[0].op in ("BiasAdd", "Add", "AddV2")
            else None
        )
        out.append(make(n.name, w, bias, n.input[0] if ":" in n.input[0] else n.input[0] + ":0"))
    return out


def find_depthwise(gd) -> list[DepthwiseLayer]:
    """The 3x3 depthwise convolutions (multiplier 1)."""
    return _find_layers(gd, "DepthwiseConv2dNative", DepthwiseLayer, lambda dims: dims[:2] == [3, 3] and dims[3] == 1)


def best_rounding(w: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Integer levels ``q`` (9,) for filter ``w`` (9,) minimising ``d^T cov d`` with ``d = q*s - w``."""
    amax = float(np.abs(w).max())
    if amax == 0.0:
        return np.zeros(9, np.float32)
    s = amax / LEVELS
    base = np.floor(w / s)
    cands = base[None, :] + _BITS  # (512, 9)
    valid = np.all(np.abs(cands) <= LEVELS, axis=1)
    # Keep the channel's largest weight on its level so that the per-channel scale is unchanged.
    top = int(np.argmax(np.abs(w)))
    valid &= np.abs(cands[:, top]) == LEVELS
    d = cands * s - w[None, :]
    cost = np.einsum("ki,ij,kj->k", d, cov, d)
    cost[~valid] = np.inf
    return cands[int(np.argmin(cost))].astype(np.float32)


def _patch_sums(
    gd,
    input_name: str,
    layers: Sequence,
    inputs: Sequence[np.ndarray],
    adapt,
    progress: bool | None,
    desc: str,
    patch_sums,
) -> list:
    """Per layer, summed over ``inputs``: ``patch_sums(tf, by_name, layer, its input feature)`` = (sum, sum of products, count)."""

    tf = import_tensorflow()
    by_name = {n.name: n for n in gd.node}
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3])
        xin = adapt(tf, x) if adapt else x
        feats = tf.graph_util.import_graph_def(
            gd, input_map={input_name: xin}, return_elements=[layer.input for layer in layers], name=""
        )
        ops = [patch_sums(tf, by_name, layer, f) for layer, f in zip(layers, feats)]
    acc = None
    with tf.compat.v1.Session(graph=g) as sess:
        for arr in progress_bar(desc=desc, unit="img", progress=progress, items=inputs, leave=False):
            vals = sess.run(ops, {x: arr})
            acc = vals if acc is None else [(a[0] + b[0], a[1] + b[1], a[2] + b[2]) for a, b in zip(acc, vals)]
    return acc or []


def _depthwise_patch_sums(tf, by_name, layer: DepthwiseLayer, f):
    node = by_name[layer.node]
    st = list(node.attr["strides"].list.i)
    pad = node.attr["padding"].s.decode()
    p = tf.image.extract_patches(f, [1, 3, 3, 1], st, [1, 1, 1, 1], pad)  # (1, h, w, 9*C) ordered (kh, kw, C)
    c = f.shape[-1]
    p = tf.reshape(p, [-1, 9, c])
    p = tf.transpose(p, [2, 0, 1])  # (C, N, 9)
    n = tf.cast(tf.shape(p)[1], tf.float32)
    return tf.reduce_sum(p, axis=1), tf.einsum("cni,cnj->cij", p, p), n


def patch_moments(
    gd,
    input_name: str,
    layers: Sequence[DepthwiseLayer],
    inputs: Sequence[np.ndarray],
    adapt=None,
    progress: bool | None = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: mean (C, 9) and covariance (C, 9, 9) of the 3x3 input patches the filters see."""
    stats = {}
    for layer, (s1, s2, n) in zip(
        layers, _patch_sums(gd, input_name, layers, inputs, adapt, progress, "filter statistics", _depthwise_patch_sums)
    ):
        mean = s1 / n
        cov = s2 / n - np.einsum("ci,cj->cij", mean, mean)
        stats[layer.node] = (mean.astype(np.float64), cov.astype(np.float64))
    return stats


def round_depthwise(gd, layers: Sequence[DepthwiseLayer], stats: dict[str, tuple[np.ndarray, np.ndarray]]):
    """A copy of ``gd`` whose depthwise filters sit on their best int8 levels (bias absorbs the mean error)."""
    tf = import_tensorflow()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    by_name = {n.name: n for n in out.node}
    changed = 0
    for layer in layers:
        w = tf.make_ndarray(by_name[layer.weights].attr["value"].tensor).astype(np.float64)  # (3, 3, C, 1)
        mean, cov = stats[layer.node]
        flat = w[:, :, :, 0].reshape(9, -1).T  # (C, 9) in (kh, kw) order, as the patches
        new = np.empty_like(flat)
        for c in range(flat.shape[0]):
            s = np.abs(flat[c]).max() / LEVELS
            new[c] = best_rounding(flat[c], cov[c]) * s if s > 0 else flat[c]
        delta = new - flat
        by_name[layer.weights].attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(new.T.reshape(3, 3, -1, 1).astype(np.float32))
        )
        if layer.bias is not None:
            b = tf.make_ndarray(by_name[layer.bias].attr["value"].tensor).astype(np.float64)
            by_name[layer.bias].attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto((b - np.einsum("ci,ci->c", delta, mean)).astype(np.float32))
            )
        changed += 1
    log.info("rounded %d depthwise layers", changed)
    return out


# --------------------------------------------------------------------------- regular convolutions


@dataclass
class ConvLayer:
    node: str
    weights: str  # Const node name, [kh, kw, Cin, Cout]
    bias: str | None
    input: str


def find_convs(gd) -> list[ConvLayer]:
    return _find_layers(gd, "Conv2D", ConvLayer)


def _conv_patch_sums(tf, by_name, layer: ConvLayer, f):
    node = by_name[layer.node]
    dims = [d.size for d in by_name[layer.weights].attr["value"].tensor.tensor_shape.dim]
    kh, kw = dims[0], dims[1]
    st = list(node.attr["strides"].list.i)
    p = (
        f
        if (kh, kw) == (1, 1) and st == [1, 1, 1, 1]
        else tf.image.extract_patches(f, [1, kh, kw, 1], st, [1, 1, 1, 1], node.attr["padding"].s.decode())
    )
    p = tf.reshape(p, [-1, kh * kw * dims[2]])  # (N, K) in (kh, kw, Cin) order, as the weights
    return tf.reduce_sum(p, axis=0), tf.matmul(p, p, transpose_a=True), tf.cast(tf.shape(p)[0], tf.float32)


def input_moments(
    gd,
    input_name: str,
    layers: Sequence[ConvLayer],
    inputs: Sequence[np.ndarray],
    adapt=None,
    progress: bool | None = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: mean (K,) and covariance (K, K) of the flattened input patches (K = kh*kw*Cin)."""
    stats = {}
    for layer, (s1, s2, n) in zip(
        layers, _patch_sums(gd, input_name, layers, inputs, adapt, progress, "conv statistics", _conv_patch_sums)
    ):
        mean = s1.astype(np.float64) / n
        stats[layer.node] = (mean, s2.astype(np.float64) / n - np.outer(mean, mean))
    return stats


def descend_rounding(w: np.ndarray, cov: np.ndarray, sweeps: int = 3) -> np.ndarray:
    """Integer levels for ``w`` (K, Cout): from nearest rounding, flip weights to the other neighbouring
    level while ``d^T cov d`` (per output channel) decreases; each channel's largest weight stays on +-127."""
    amax = np.abs(w).max(axis=0)
    s = np.where(amax > 0, amax / LEVELS, 1.0)
    lo = np.floor(w / s)
    q = np.clip(np.round(w / s), -LEVELS, LEVELS)
    d = q * s - w  # (K, Cout)
    g = cov @ d  # gradient/2 of d^T cov d, per column
    top = np.argmax(np.abs(w), axis=0)
    fixed = np.zeros_like(w, dtype=bool)
    fixed[top, np.arange(w.shape[1])] = True
    for _ in range(sweeps):
        changed = False
        for i in range(w.shape[0]):
            other = np.where(q[i] == lo[i], lo[i] + 1, lo[i])
            ok = (np.abs(other) <= LEVELS) & ~fixed[i]
            step = (other - q[i]) * s
            gain = 2 * step * g[i] + cov[i, i] * step * step
            flip = ok & (gain < -1e-18)
            if flip.any():
                changed = True
                st = np.where(flip, step, 0.0)
                q[i] = np.where(flip, other, q[i])
                g += np.outer(cov[:, i], st)
        if not changed:
            break
    return q * s


def round_convs(gd, layers: Sequence[ConvLayer], stats: dict[str, tuple[np.ndarray, np.ndarray]]):
    """A copy of ``gd`` whose Conv2D filters sit on output-aware int8 levels (bias absorbs the mean error)."""
    tf = import_tensorflow()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    by_name = {n.name: n for n in out.node}
    for layer in layers:
        w = tf.make_ndarray(by_name[layer.weights].attr["value"].tensor).astype(np.float64)
        shape = w.shape
        flat = w.reshape(-1, shape[3])
        mean, cov = stats[layer.node]
        new = descend_rounding(flat, cov)
        by_name[layer.weights].attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(new.reshape(shape).astype(np.float32))
        )
        if layer.bias is not None:
            b = tf.make_ndarray(by_name[layer.bias].attr["value"].tensor).astype(np.float64)
            by_name[layer.bias].attr["value"].tensor.CopyFrom(
                tf.make_tensor_proto((b - mean @ (new - flat)).astype(np.float32))
            )
    return out
