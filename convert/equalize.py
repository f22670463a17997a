"""Activation-range equalization: a graph rewrite that makes full-integer quantization accurate.

int8 activations have one scale per tensor. In MobileNet's ReLU6 layers many
channels only reach a small part of the tensor's range, so they get a handful of
quantization levels and the backbone's error grows layer by layer. For every
``conv -> bias -> ReLU/ReLU6 -> conv(s)`` chain, channel ``c`` of the activation is
scaled up by ``s_c`` (producer weights and bias times ``s_c``) and the consumers'
input weights for ``c`` are divided by ``s_c``. ReLU is positively homogeneous,
so the float function is unchanged; for ReLU6 ``s_c`` is chosen so that twice
(``headroom``) the channel's largest calibration value stays within the layer's
range (<= 6), so clipping behaves as before on anything but extreme inputs (on
the held-out images the float outputs are unchanged). Consumer weights are quantized per channel
(depthwise: per input channel, exact; pointwise: per output channel), so the
rewrite moves precision to where the per-tensor activation scale was wasting it.

The statistics come from the calibration images (never the evaluation images).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import import_tensorflow

log = logging.getLogger(__name__)

_CONV = ("Conv2D", "DepthwiseConv2dNative")
_BIAS = ("BiasAdd", "Add", "AddV2")
_ACT = {"Relu6": 6.0, "Relu": np.inf}


@dataclass
class Chain:
    act: str  # activation node name
    cap: float  # 6 for ReLU6, inf for ReLU
    producer: str  # conv node
    producer_weights: str  # Const node name
    bias: str  # Const node name
    consumers: list[tuple[str, str]]  # (conv node, weights Const node)


def _resolve_const(name: str, by_name: dict) -> str | None:
    """Follow Identity nodes back to a Const; None if the input is not a constant."""
    n = by_name.get(name.split(":")[0].lstrip("^"))
    while n is not None and n.op == "Identity":
        n = by_name.get(n.input[0].split(":")[0])
    return n.name if n is not None and n.op == "Const" else None


def find_chains(gd) -> list[Chain]:
    by_name = {n.name: n for n in gd.node}
    consumers: dict[str, list] = {}
    for n in gd.node:
        for i in n.input:
            consumers.setdefault(i.split(":")[0].lstrip("^"), []).append(n)
    const_uses: dict[str, int] = {}
    for n in gd.node:
        if n.op == "Identity":
            continue  # the "read" nodes between a weight and its user
        for i in n.input:
            c = _resolve_const(i, by_name)
            if c:
                const_uses[c] = const_uses.get(c, 0) + 1
    chains = []
    for act in gd.node:
        if act.op not in _ACT:
            continue
        pre = by_name.get(act.input[0].split(":")[0])
        if pre is None or pre.op not in _BIAS or len(consumers.get(pre.name, [])) != 1:
            continue
        bias = _resolve_const(pre.input[1], by_name)
        conv = by_name.get(pre.input[0].split(":")[0])
        if bias is None or conv is None or conv.op not in _CONV or len(consumers.get(conv.name, [])) != 1:
            continue
        pw = _resolve_const(conv.input[1], by_name)
        users = consumers.get(act.name, [])
        cons = []
        for u in users:
            cw = _resolve_const(u.input[1], by_name) if u.op in _CONV and len(u.input) > 1 else None
            if cw is None or u.input[0].split(":")[0] != act.name:
                cons = []
                break
            cons.append((u.name, cw))
        if not cons or pw is None:
            continue
        if any(const_uses.get(c, 0) != 1 for c in [pw, bias] + [w for _, w in cons]):
            continue  # a shared weight cannot be rescaled for one use only
        chains.append(Chain(act.name, _ACT[act.op], conv.name, pw, bias, cons))
    return chains


def activation_maxima(
    gd, input_name: str, chains: Sequence[Chain], inputs: Sequence[np.ndarray], adapt=None
) -> dict[str, np.ndarray]:
    """Per-channel maximum of each chain's activation over ``inputs`` (``[1,h,w,3]`` arrays)."""
    tf = import_tensorflow()
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3])
        xin = adapt(tf, x) if adapt else x
        outs = tf.graph_util.import_graph_def(
            gd, input_map={input_name: xin}, return_elements=[c.act + ":0" for c in chains], name=""
        )
        reduced = [tf.reduce_max(o, axis=[0, 1, 2]) for o in outs]
    maxima = None
    with tf.compat.v1.Session(graph=g) as s:
        for arr in inputs:
            vals = s.run(reduced, {x: arr})
            maxima = vals if maxima is None else [np.maximum(a, b) for a, b in zip(maxima, vals)]
    return {c.act: np.asarray(m, np.float32) for c, m in zip(chains, maxima or [])}


def channel_scales(maxima: np.ndarray, cap: float, max_scale: float, headroom: float = 1.0) -> np.ndarray:
    """``s_c`` lifting each channel's maximum (times ``headroom``) towards the layer's range, at most ``max_scale``; dead channels stay."""
    top = min(float(maxima.max()), cap) if maxima.size else 0.0
    s = np.ones_like(maxima, dtype=np.float32)
    live = maxima > 1e-6 * max(top, 1e-12)
    s[live] = np.clip(top / (maxima[live] * headroom), 1.0, max_scale)
    return s


def equalize(gd, maxima: dict[str, np.ndarray], chains: Sequence[Chain], max_scale: float = 8.0, headroom: float = 2.0):
    """A copy of ``gd`` with each chain's channels rescaled (the float function is unchanged)."""
    tf = import_tensorflow()
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(gd)
    by_name = {n.name: n for n in out.node}
    op_of = {n.name: n.op for n in out.node}

    def get(name):
        return tf.make_ndarray(by_name[name].attr["value"].tensor)

    def put(name, arr):
        by_name[name].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr.astype(np.float32)))

    done = 0
    for c in chains:
        s = channel_scales(maxima[c.act], c.cap, max_scale, headroom if np.isfinite(c.cap) else 1.0)
        if np.allclose(s, 1.0):
            continue
        w = get(c.producer_weights)
        if op_of[c.producer] == "Conv2D":
            w = w * s  # [kh, kw, in, out]
        else:
            if w.shape[3] != 1:
                continue
            w = w * s[None, None, :, None]  # depthwise [kh, kw, channels, 1]
        put(c.producer_weights, w)
        put(c.bias, get(c.bias) * s)
        for _, cw in c.consumers:
            put(cw, get(cw) / s[None, None, :, None])  # input-channel axis of Conv2D and depthwise
        done += 1
    log.info("equalized %d of %d activation layers", done, len(chains))
    return out
