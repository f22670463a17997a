"""Fitting a frame to a model input: the one resize used by the runtime, calibration and the fidelity report.

The runtime, the converter's calibration and ``edgepose convert --report`` all call
:func:`fit_to_input`, so a converted model is calibrated and judged on exactly the
pixels a device feeds it.

Filters (``[model] resize_filter``, ``edgepose run --resize-filter``):

* ``antialias`` (default): close to OpenCV's ``INTER_AREA`` (a box average over every
  source pixel) at a fraction of its cost: exact 2x2 box averages while the frame is at
  least twice the input (OpenCV's SIMD path), then, on the axes that still shrink by more
  than 10 %, a linear resize to twice the target and an exact 2x average. A 2x2 box is a
  weaker low-pass than ``INTER_AREA``'s wide box: stripes of a 3 px period shrunk from
  1280x720 keep a std of 32 grey levels (``INTER_AREA`` 14, ``INTER_LINEAR`` 85); on real
  frames it is within 0.3 grey levels of ``INTER_AREA`` on average (tests/test_preprocess.py).
  ``benchmarks/resize_bench.py`` compares it with the other candidates.
* ``linear``: ``INTER_LINEAR`` alone, the fastest; it aliases when shrinking by more than 2x.
* ``area``: OpenCV's ``INTER_AREA`` (the quality reference; ~10x slower on a 720p frame).
* ``nearest``: ``INTER_NEAREST_EXACT``, what Coral's reference test does (PIL's nearest).

Enlarging (a source smaller than the input) is linear for every filter but ``nearest``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np

#: The one list of filters and fit modes: the config model, ``edgepose run``'s choices and the runtime's checks use these.
ResizeFilter = Literal["antialias", "linear", "area", "nearest"]
FILTERS: tuple[str, ...] = get_args(ResizeFilter)
ResizeMode = Literal["stretch", "pad"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)

#: Below this residual shrink factor, linear interpolation aliases too little to matter.
_RESIDUAL_MIN = 1.1


@dataclass(frozen=True)
class Transform:
    """Maps model-input pixels back to source pixels: ``src = (inp - pad) / scale``."""

    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_source(self, yx: np.ndarray) -> np.ndarray:
        """``(…, 2)`` input-pixel ``(y, x)`` -> source-pixel ``(x, y)``."""
        x = (yx[..., 1] - self.pad_x) / self.scale_x
        y = (yx[..., 0] - self.pad_y) / self.scale_y
        return np.stack([x, y], axis=-1).astype(np.float32)


def _antialias(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """Shrink with box averaging; returns the image and the source width/height it covers
    (each halving drops an odd last column/row)."""
    h, w = image.shape[:2]
    used_w, used_h = w, h
    # 1. Halve while both sides allow: OpenCV's INTER_AREA is a fast (SIMD) 2x2 box average only for exactly 2x2.
    while w >= 2 * width and h >= 2 * height:
        cw, ch = w - w % 2, h - h % 2
        used_w -= (w % 2) * (used_w // w)
        used_h -= (h % 2) * (used_h // h)
        image = cv2.resize(image[:ch, :cw], (cw // 2, ch // 2), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    # 2. The rest: linear to twice the target on the axes that still shrink by more than 10 %, then halve
    #    them; a linear resize by exactly 2 samples half-way between pixel pairs, i.e. averages them.
    mx = 2 if w > _RESIDUAL_MIN * width else 1
    my = 2 if h > _RESIDUAL_MIN * height else 1
    if mx * my > 1:
        image = cv2.resize(image, (mx * width, my * height), interpolation=cv2.INTER_LINEAR)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return image, used_w, used_h


def resize(image: np.ndarray, width: int, height: int, resize_filter: str = "antialias") -> tuple[np.ndarray, int, int]:
    """``image`` resized to ``width`` x ``height``; also the source width/height the result covers."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image, w, h
    if resize_filter == "nearest":
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST_EXACT), w, h
    if w <= width and h <= height or resize_filter == "linear":
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR), w, h
    if resize_filter == "area":
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), w, h
    if resize_filter == "antialias":
        return _antialias(image, width, height)
    raise ValueError(f"unknown resize filter {resize_filter!r}; use one of {', '.join(FILTERS)}")


def fit_to_input(
    image_bgr: np.ndarray, height: int, width: int, mode: str = "stretch", resize_filter: str = "antialias"
) -> tuple[np.ndarray, Transform]:
    """A BGR image fitted to a ``height`` x ``width`` model input (RGB uint8), and the map back to source pixels.

    ``stretch`` fills the input (as Coral's tests do); ``pad`` keeps the aspect ratio and
    pads the right and bottom with black.
    """
    h, w = image_bgr.shape[:2]
    if mode == "pad":
        s = min(width / w, height / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        small, used_w, used_h = resize(image_bgr, nw, nh, resize_filter)
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[:nh, :nw] = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        return rgb, Transform(nw / used_w, nh / used_h)
    resized, used_w, used_h = resize(image_bgr, width, height, resize_filter)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), Transform(width / used_w, height / used_h)


def to_float_input(rgb: np.ndarray, input_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """``[1, h, w, 3]`` float32 scaled from ``[0, 255]`` to ``input_range`` (a float model's input)."""
    lo, hi = input_range
    return (rgb.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo))[None]
