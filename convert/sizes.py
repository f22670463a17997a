"""Input sizes: PoseNet needs each side to be ``k * output_stride + 1``."""

from __future__ import annotations

import re

from .errors import ConvertError


def parse_size(text: str) -> tuple[int, int]:
    """``"353x481"`` -> ``(353, 481)`` (height x width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", text or "")
    if not m:
        raise ConvertError(f"input size {text!r} is not HxW.", "write it as height x width, e.g. --input-size 353x481.")
    h, w = int(m.group(1)), int(m.group(2))
    if h <= 0 or w <= 0:
        raise ConvertError(f"input size {text!r} has a zero side.", "use positive sizes, e.g. 353x481.")
    return h, w


def is_valid_side(n: int, stride: int) -> bool:
    return n > stride and (n - 1) % stride == 0


def nearest_valid_sides(n: int, stride: int) -> list[int]:
    """The valid side lengths just below and above ``n`` (nearest first)."""
    k = max(1, (n - 1) // stride)
    cands = {k * stride + 1, (k + 1) * stride + 1}
    if k > 1:
        cands.add((k - 1) * stride + 1)
    return sorted((c for c in cands if c > stride), key=lambda c: (abs(c - n), c))[:2]


def check_input_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Return ``size`` if both sides are ``k*stride+1``, else raise an error proposing the nearest valid sizes."""
    h, w = size
    if is_valid_side(h, stride) and is_valid_side(w, stride):
        return size
    hs = [h] if is_valid_side(h, stride) else nearest_valid_sides(h, stride)
    ws = [w] if is_valid_side(w, stride) else nearest_valid_sides(w, stride)
    proposals = []
    for hh in hs:
        for ww in ws:
            proposals.append((abs(hh - h) + abs(ww - w), f"{hh}x{ww}"))
    proposals.sort()
    best = ", ".join(p for _, p in proposals[:3])
    raise ConvertError(
        f"input size {h}x{w} is not possible with output stride {stride}: each side must be k*{stride}+1.",
        f"use the nearest valid size ({best}).",
    )
