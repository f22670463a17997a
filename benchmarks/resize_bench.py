"""Shrinking a frame to the model input: candidate filters for quality and speed.

    python benchmarks/resize_bench.py [--repeat 300] [--fidelity]

Speed: 1280x720 frames of the shared video to 481x353 (the default model's input), median
ms per call and the ratio to ``INTER_LINEAR`` measured in the same process (ratios survive
a busy machine). OpenCV runs single-threaded here, as it effectively does on a loaded device.

Quality: PSNR against ``INTER_AREA`` (the exact box average: the antialiasing reference)
on video frames (2.7x shrink), the COCO images (about 1.3x) and test_couple.jpg (4x).

``--fidelity`` (needs TensorFlow) adds what the filter does to int8: the converter's default
int8 of model-mobilenet_v1_050.pb at 353x481 (calibrated on the even COCO half through the
same filter) against its float32, share of float32's confident keypoints (score > 0.5)
within 5 model-input px on the held-out images (odd COCO half + test_couple.jpg, full size)
and on every 10th frame of the shared video.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared

W, H = 481, 353

from benchmarks.baselines.tables import table  # noqa: E402
from edgepose.preprocess import resize  # noqa: E402

Resize = Callable[[np.ndarray, int, int], np.ndarray]


def _area_int(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Exact box average by the integer part of the factor (OpenCV's fast INTER_AREA path)."""
    kx, ky = max(1, im.shape[1] // w), max(1, im.shape[0] // h)
    if kx == 1 and ky == 1:
        return im
    cw, ch = (im.shape[1] // kx) * kx, (im.shape[0] // ky) * ky
    return cv2.resize(im[:ch, :cw], (cw // kx, ch // ky), interpolation=cv2.INTER_AREA)


def _gauss_then_linear(im: np.ndarray, w: int, h: int) -> np.ndarray:
    fx, fy = im.shape[1] / w, im.shape[0] / h
    sx, sy = max(0.01, 0.5 * np.sqrt(max(fx * fx - 1, 0))), max(0.01, 0.5 * np.sqrt(max(fy * fy - 1, 0)))
    return cv2.resize(cv2.GaussianBlur(im, (0, 0), sigmaX=sx, sigmaY=sy), (w, h), interpolation=cv2.INTER_LINEAR)


def _pyr_then_linear(im: np.ndarray, w: int, h: int) -> np.ndarray:
    while im.shape[1] >= 2 * w and im.shape[0] >= 2 * h:
        im = cv2.pyrDown(im)
    return cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)


def _linear_2x_then_area(im: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(
        cv2.resize(im, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR), (w, h), interpolation=cv2.INTER_AREA
    )


CANDIDATES: dict[str, Resize] = {
    "linear (INTER_LINEAR)": lambda im, w, h: cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR),
    "area (INTER_AREA)": lambda im, w, h: cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA),
    "decimate 2 + linear": lambda im, w, h: cv2.resize(im[::2, ::2], (w, h), interpolation=cv2.INTER_LINEAR),
    "pyrDown + linear": _pyr_then_linear,
    "gaussian + linear": _gauss_then_linear,
    "area at int factor + linear": lambda im, w, h: cv2.resize(
        _area_int(im, w, h), (w, h), interpolation=cv2.INTER_LINEAR
    ),
    "area at int factor + area": lambda im, w, h: cv2.resize(_area_int(im, w, h), (w, h), interpolation=cv2.INTER_AREA),
    "linear to 2x + area 2x": _linear_2x_then_area,
    "edgepose antialias (default)": lambda im, w, h: resize(im, w, h, "antialias")[0],
}
#: The candidate the runtime's filter names map to (the fidelity section converts one int8 per filter).
RUNTIME_FILTERS = {
    "linear (INTER_LINEAR)": "linear",
    "area (INTER_AREA)": "area",
    "edgepose antialias (default)": "antialias",
}


def video_frames(step: int = 1, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SHARED / "video" / "openpose_video.avi"))
    frames, i = [], 0
    while limit is None or len(frames) < limit:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(f)
        i += 1
    cap.release()
    return frames


def median_ms(fn: Resize, frames: list[np.ndarray], repeat: int) -> float:
    fn(frames[0], W, H)
    samples = []
    for i in range(repeat):
        f = frames[i % len(frames)]
        t = time.perf_counter()
        fn(f, W, H)
        samples.append(time.perf_counter() - t)
    return 1e3 * float(np.median(samples))


def psnr_vs_area(fn: Resize, images: list[np.ndarray]) -> float:
    vals = []
    for im in images:
        ref = cv2.resize(im, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)
        mse = float(((fn(im, W, H).astype(np.float32) - ref) ** 2).mean())
        vals.append(10 * np.log10(255.0**2 / max(mse, 1e-6)))
    return float(np.mean(vals))


def fidelity_rows(eval_images: list[np.ndarray], video: list[np.ndarray]) -> list[list[str]]:
    """int8 vs float32 through each runtime filter, the int8 calibrated through the same filter."""
    from unittest import mock

    import edgepose_convert.calibration as calib
    from edgepose.model.posenet import load_posenet
    from edgepose.preprocess import fit_to_input, to_float_input
    from edgepose_convert.api import convert
    from edgepose_convert.calibration import (
        list_images,
        load_calibration,
        split_held_out,
    )
    from edgepose_convert.report import keypoint_errors
    from edgepose_convert.sources import load_source
    from edgepose_convert.tflite import QuantOptions

    src = load_source(SHARED / "models" / "posenet-python" / "model-mobilenet_v1_050.pb")
    cal_paths, _ = split_held_out(list_images(SHARED / "images" / "coco"))
    coco = load_calibration(cal_paths)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        f32_path = convert(src, "float32", (H, W), Path(tmp) / "f32.tflite", progress=False).path
        for label, name in RUNTIME_FILTERS.items():

            def pre(img, size, input_range=(-1.0, 1.0), _f=name):
                return to_float_input(fit_to_input(img, size[0], size[1], "stretch", _f)[0], input_range)

            with mock.patch.object(calib, "preprocess", pre):  # calibrate through the same filter
                i8_path = convert(
                    src,
                    "int8",
                    (H, W),
                    Path(tmp) / f"{name}.tflite",
                    calibration=coco,
                    quant=QuantOptions(),
                    progress=False,
                ).path
            f32, i8 = load_posenet(f32_path, 2, resize_filter=name), load_posenet(i8_path, 2, resize_filter=name)

            def share(images: list[np.ndarray]) -> str:
                errs = []
                for im in images:
                    s = np.array([W / im.shape[1], H / im.shape[0]], np.float32)
                    a, b = ([p.scaled(*s) for p in m.estimate(im)] for m in (f32, i8))
                    errs.append(keypoint_errors(a, b))
                e = np.concatenate(errs)
                return f"{100 * np.mean(e <= 5):.1f} % of {e.size}"

            rows.append([label, share(eval_images), share(video)])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument(
        "--fidelity",
        action="store_true",
        help="also convert int8 per filter and compare keypoints (TensorFlow, ~1 min)",
    )
    args = ap.parse_args()
    cv2.setNumThreads(1)
    frames = video_frames(limit=20)
    coco_paths = sorted((SHARED / "images" / "coco").glob("*.jpg"))
    coco = [cv2.imread(str(p)) for p in coco_paths]
    couple = cv2.imread(str(SHARED / "images" / "test_couple.jpg"))
    base = median_ms(CANDIDATES["linear (INTER_LINEAR)"], frames, args.repeat)
    rows = []
    for label, fn in CANDIDATES.items():
        t = median_ms(fn, frames, args.repeat)
        rows.append(
            [
                label,
                f"{t:.3f}",
                f"{t / base:.2f}x",
                f"{psnr_vs_area(fn, frames[:5]):.1f}",
                f"{psnr_vs_area(fn, coco):.1f}",
                f"{psnr_vs_area(fn, [couple]):.1f}",
            ]
        )
    table(
        f"Resize 1280x720 -> {W}x{H}: median ms (1 OpenCV thread), x INTER_LINEAR; PSNR dB against INTER_AREA",
        ["filter", "ms", "x linear", "PSNR video", "PSNR COCO", "PSNR couple"],
        rows,
    )
    if args.fidelity:
        odd = coco[1::2] + [couple]
        table(
            "int8 vs float32 (model-mobilenet_v1_050, 353x481, calibrated through the same filter): "
            "float32's confident keypoints within 5 model-input px",
            ["runtime filter", "held-out images (odd COCO + couple)", "video (every 10th frame)"],
            fidelity_rows(odd, video_frames(step=10)),
        )


if __name__ == "__main__":
    main()
