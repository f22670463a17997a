"""The one pre-processing function: antialiased shrinking, the map back to source pixels, one copy of it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import edgepose_convert.calibration as calibration
from edgepose import preprocess
from edgepose.preprocess import fit_to_input, resize

from .conftest import SHARED

W, H = 481, 353


def stripes(width: int = 1280, height: int = 720, period: int = 3) -> np.ndarray:
    """Vertical black/white stripes finer than the model input can show: a shrink must turn them grey."""
    x = (np.arange(width) % period < period / 2).astype(np.uint8) * 255
    return np.repeat(np.repeat(x[None, :, None], height, axis=0), 3, axis=2)


@pytest.mark.parametrize("period", [3, 5])
def test_antialias_removes_most_of_what_linear_aliases(period):
    """Stripes finer than the input can show come out as moire with linear; the box filters grey them.

    Measured (std of the result): period 3: INTER_AREA 14, antialias 32, linear 85; period 5: 65, 39, 106.
    """
    img = stripes(period=period)
    aa = resize(img, W, H, "antialias")[0].astype(np.float32)
    lin = resize(img, W, H, "linear")[0].astype(np.float32)
    area = resize(img, W, H, "area")[0].astype(np.float32)
    assert aa.std() < 0.5 * lin.std()
    assert aa.std() < max(area.std(), 10.0) * 2.5
    assert abs(aa.mean() - area.mean()) < 3  # same brightness: a box average, no bias


def test_antialias_is_close_to_area_on_a_real_frame():
    cap = cv2.VideoCapture(str(SHARED / "video" / "openpose_video.avi"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    area = resize(frame, W, H, "area")[0].astype(np.float32)
    for f in ("antialias", "linear"):
        out = resize(frame, W, H, f)[0].astype(np.float32)
        assert out.shape == area.shape
    assert np.abs(resize(frame, W, H, "antialias")[0].astype(np.float32) - area).mean() < 1.0


@pytest.mark.parametrize("size", [(1281, 721), (1920, 1278), (640, 480), (300, 200)])
@pytest.mark.parametrize("mode", ["stretch", "pad"])
def test_transform_maps_a_dot_back_to_where_it_was(size, mode):
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    x, y = int(w * 0.37), int(h * 0.61)
    cv2.circle(img, (x, y), max(6, w // 60), (255, 255, 255), -1)
    rgb, tr = fit_to_input(img, H, W, mode, "antialias")
    assert rgb.shape == (H, W, 3)
    g = rgb[..., 0].astype(np.float32)
    yy, xx = np.mgrid[:H, :W]
    cy, cx = (g * yy).sum() / g.sum(), (g * xx).sum() / g.sum()  # centroid in input pixels
    back = tr.to_source(np.array([cy, cx], np.float32))
    assert np.allclose(back, [x, y], atol=max(1.5, 1.5 / tr.scale_x))


def test_pad_leaves_the_rest_black():
    img = np.full((720, 1280, 3), 200, np.uint8)
    rgb, tr = fit_to_input(img, H, W, "pad")
    nh = round(720 * tr.scale_y)  # a wide frame: padded at the bottom
    assert nh < H and (rgb[nh:] == 0).all() and rgb[:nh].min() == 200
    tall, tr = fit_to_input(img.transpose(1, 0, 2).copy(), H, W, "pad")
    nw = round(720 * tr.scale_x)  # a tall one: at the right
    assert nw < W and (tall[:, nw:] == 0).all() and tall[:, :nw].min() == 200


def test_calibration_uses_the_runtime_function():
    """Calibration and the report import the runtime's pre-processing, not a copy."""
    assert calibration.fit_to_input is preprocess.fit_to_input
    img = cv2.imread(str(SHARED / "images" / "test_couple.jpg"))
    x = calibration.preprocess(img, (H, W))
    rgb, _ = fit_to_input(img, H, W)
    assert x.shape == (1, H, W, 3) and np.allclose(x[0], rgb.astype(np.float32) / 127.5 - 1.0, atol=1e-6)
