"""Converter fidelity: what each precision and each int8 choice costs in accuracy, size and speed.

    python benchmarks/convert_fidelity.py [--input-size 353x481] [--threads 2] [--json report.json]

Source: ../shared/models/posenet-python/model-mobilenet_v1_050.pb (MobileNetV1 0.50, stride 16).
Images: ../shared/images/coco, split deterministically (sorted; even positions calibrate, odd positions
are held out for evaluation, with ../shared/images/test_couple.jpg); optionally 60 frames of
../shared/video/openpose_video.avi for calibration. Held-out images are given at full size and go through
the runtime's own pre-processing, as with `edgepose run`, so the int8 row's "<=5px" is the figure the CLI
gives (tests/test_convert_fidelity.py checks that). Every model is run by the edgepose runtime
(load_posenet, no flags); the baseline is the float32 model,
in the same process. Columns: file size and median invoke latency (x float32), share of confident
float32 keypoints (score > 0.5) within 2 and 5 px (model-input pixels) after matching poses, mean and
p95 pixel error, poses per image.

The int8 rows are an ablation: each adds or removes one choice against the default
(COCO calibration half + mirrored images + output-aware rounding of every convolution, per-channel weights).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input-size", default="353x481")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--quick", action="store_true", help="only the four default precisions")
    args = ap.parse_args(argv)

    from edgepose_convert.api import convert
    from edgepose_convert.calibration import list_images, load_calibration, split_held_out, video_frames
    from edgepose_convert.report import fidelity_report, format_table
    from edgepose_convert.sizes import parse_size
    from edgepose_convert.sources import load_source
    from edgepose_convert.tflite import QuantOptions

    size = parse_size(args.input_size)
    src = load_source(SHARED / "models" / "posenet-python" / "model-mobilenet_v1_050.pb")
    cal_paths, eval_paths = split_held_out(list_images(SHARED / "images" / "coco"))
    eval_paths = [*eval_paths, SHARED / "images" / "test_couple.jpg"]
    coco = load_calibration(cal_paths)
    video = video_frames(SHARED / "video" / "openpose_video.avi", 60)

    default = QuantOptions()
    variants: list[tuple[str, str, dict]] = [
        ("float32", "float32", {}),
        ("float16", "float16", {}),
        ("dynamic", "dynamic", {}),
        ("int8", "int8", {"calibration": coco, "quant": default}),
    ]
    if not args.quick:
        variants += [
            ("int8 plain", "int8", {"calibration": coco, "quant": QuantOptions(mirror=False, rounding="nearest")}),
            ("int8 nearest", "int8", {"calibration": coco, "quant": QuantOptions(rounding="nearest")}),
            ("int8 depthwise-only", "int8", {"calibration": coco, "quant": QuantOptions(rounding="depthwise")}),
            ("int8 +equalize", "int8", {"calibration": coco, "quant": QuantOptions(equalize=True)}),
            (
                "int8 nearest +equal.",
                "int8",
                {"calibration": coco, "quant": QuantOptions(rounding="nearest", equalize=True)},
            ),
            ("int8 +video", "int8", {"calibration": coco + video, "quant": default}),
            ("int8 nearest +video", "int8", {"calibration": coco + video, "quant": QuantOptions(rounding="nearest")}),
            ("int8 int8-io", "int8", {"calibration": coco, "quant": QuantOptions(io_type="int8")}),
            ("int8 float heads", "int8", {"calibration": coco, "quant": QuantOptions(float_heads=True)}),
            ("int8 per-tensor", "int8", {"calibration": coco, "quant": QuantOptions(per_channel=False)}),
        ]
    out = Path(tempfile.mkdtemp(prefix="convert_fidelity_"))
    models: dict[str, Path] = {}
    timings: dict[str, float] = {}
    for label, precision, kw in variants:
        t = time.perf_counter()
        res = convert(src, precision, size, out / f"{label.replace(' ', '_')}.tflite", progress=False, **kw)
        timings[label] = time.perf_counter() - t
        models[label] = res.path
        print(f"converted {label:<22} {res.size_bytes / 1e6:6.2f} MB in {timings[label]:5.1f} s", file=sys.stderr)
    report = fidelity_report(
        models,
        eval_paths,
        src=src,
        threads=args.threads,
        progress=False,
        extra={
            "calibration": {"coco_images": [p.name for p in cal_paths], "video_frames": len(video)},
            "convert_seconds": timings,
        },
    )
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
