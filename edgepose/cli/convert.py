"""``edgepose convert``: a float PoseNet to ``.tflite`` in any precision, with metadata and a fidelity report.

TensorFlow is imported only when the command runs (by the ``convert`` package);
without it the command says how to add the ``[convert]`` extra. See convert/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import EdgeposeError


def register(subparsers) -> None:
    # No TensorFlow here: edgepose_convert installs with edgepose and imports TensorFlow only to convert.
    from edgepose_convert.tflite import ROUNDINGS

    p = subparsers.add_parser(
        "convert",
        help="convert a float PoseNet (TF1 .pb/checkpoint, TF.js, Keras, SavedModel) to .tflite",
        description="Convert a float PoseNet to TFLite (float32, float16, dynamic-range or full-integer int8, "
        "optionally Edge TPU-ready) with edgepose metadata, so the runtime needs no flags; "
        "--report compares every precision with float32 on held-out images. Needs TensorFlow: pip install -e '.[convert]' in the edgepose checkout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  edgepose convert model-mobilenet_v1_050.pb --precision float16 --input-size 353x481 --out pose_f16.tflite\n"
        "  edgepose convert model-stride16.json --precision int8 --calibration frames/ --edgetpu --out-dir models/\n"
        "  edgepose convert model.pb --precision all --input-size 353x481 --calibration coco/ --out-dir out/ --report out/report.json\n"
        "  edgepose convert pose_int8.tflite --check-edgetpu",
    )
    p.add_argument(
        "source",
        metavar="SRC",
        help="source model: .pb, checkpoint prefix/.meta/.index or folder, model.json, .keras/.h5, SavedModel folder (a .tflite with --check-edgetpu)",
    )
    p.add_argument(
        "--precision",
        default="float32",
        help="float32, float16, dynamic, int8, a comma list, or 'all' (default float32)",
    )
    p.add_argument(
        "--input-size",
        default=None,
        metavar="HxW",
        help="model input, each side k*stride+1 (default 353x481, or the source's fixed size)",
    )
    p.add_argument("--out", type=Path, help="output .tflite (one precision only)")
    p.add_argument("--out-dir", type=Path, help="folder for the outputs (named NAME_H_W_PRECISION.tflite)")
    p.add_argument("--name", help="model name recorded in the metadata (default from the architecture)")
    q = p.add_argument_group("full-integer (int8)")
    q.add_argument(
        "--calibration",
        action="append",
        default=[],
        metavar="PATH",
        help="folder of images, video or image file (repeatable); 50-300 images like the device will see",
    )
    q.add_argument(
        "--io-type", choices=["uint8", "int8"], default="uint8", help="int8 input/output type (default uint8, as Coral)"
    )
    q.add_argument(
        "--edgetpu", action="store_true", help="Edge TPU-ready int8; runs edgetpu_compiler when it is on PATH"
    )
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    q.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        default="all",
        help="weight rounding: output-aware for every convolution (default), for depthwise filters only, or nearest (TFLite's own)",
    )
    q.add_argument(
        "--equalize", action="store_true", help="also apply activation-range equalization (measured: no reliable gain)"
    )
    q.add_argument(
        "--float-heads",
        action="store_true",
        help="keep the output heads float (more accurate, CPU-only heads; not with --edgetpu)",
    )
    q.add_argument("--no-mirror", action="store_true", help="do not add mirrored calibration images")
    q.add_argument("--video-frames", type=int, default=60, help="frames taken from each calibration video (default 60)")
    r = p.add_argument_group("fidelity report")
    r.add_argument(
        "--report",
        nargs="?",
        const="-",
        metavar="JSON",
        help="compare each precision with float32 on held-out images; print a table, write JSON here",
    )
    r.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="PATH",
        help="held-out images for --report (default: half of the --calibration folder, the other half calibrates)",
    )
    r.add_argument("--threads", type=int, default=2, help="interpreter threads for the latency figures (default 2)")
    s = p.add_argument_group("source details (only when they cannot be read from the source)")
    s.add_argument("--architecture", choices=["mobilenet_v1", "resnet50"])
    s.add_argument("--multiplier", type=float)
    s.add_argument(
        "--outputs",
        metavar="ROLE=NAME,...",
        help="source output names: heatmaps=..,short_offsets=..,displacement_fwd=..,displacement_bwd=..",
    )
    p.add_argument(
        "--check-edgetpu",
        action="store_true",
        help="only print the offline Edge TPU compatibility report of SRC (.tflite)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_convert)


def _precisions(text: str) -> list[str]:
    from edgepose_convert.model_types import PRECISIONS

    items = [t.strip() for t in text.split(",") if t.strip()]
    if items == ["all"]:
        return list(PRECISIONS)
    bad = [t for t in items if t not in PRECISIONS]
    if bad or not items:
        raise EdgeposeError(
            f"unknown precision {', '.join(bad) or repr(text)}.",
            f"use {', '.join(PRECISIONS)}, a comma list of them, or 'all'.",
        )
    return list(dict.fromkeys(items))


def _outputs(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    res = {}
    for part in text.split(","):
        if "=" not in part:
            raise EdgeposeError(
                f"--outputs item {part!r} is not ROLE=NAME.",
                "write e.g. --outputs heatmaps=heatmap_2,short_offsets=offset_2,displacement_fwd=displacement_fwd_2,displacement_bwd=displacement_bwd_2",
            )
        k, v = part.split("=", 1)
        res[k.strip()] = v.strip()
    return res


def cmd_convert(args: argparse.Namespace) -> int:
    precisions = _precisions(args.precision)
    if args.check_edgetpu:
        return _check_edgetpu(Path(args.source))
    if args.out and len(precisions) > 1:
        raise EdgeposeError("--out names one file but several precisions were asked for.", "use --out-dir DIR instead.")
    if args.edgetpu and "int8" not in precisions:
        raise EdgeposeError(
            "--edgetpu needs --precision int8.", "add --precision int8 (the Edge TPU runs full-integer models only)."
        )
    if args.float_heads and args.edgetpu:
        raise EdgeposeError(
            "--float-heads cannot be combined with --edgetpu.", "drop one: the Edge TPU needs every op in int8."
        )
    if args.report and "float32" not in precisions:
        precisions.insert(0, "float32")  # the report's baseline

    # Everything below needs TensorFlow; the convert package imports it on use.
    from edgepose_convert import errors as cerr

    cerr.import_tensorflow()
    from edgepose_convert.api import convert, default_output_path
    from edgepose_convert.calibration import list_images, load_calibration, split_held_out
    from edgepose_convert.report import fidelity_report, format_table, write_report
    from edgepose_convert.sizes import parse_size
    from edgepose_convert.sources import load_source
    from edgepose_convert.tflite import QuantOptions

    progress = False if args.no_progress else None  # None: bars on a terminal only
    src = load_source(
        args.source, architecture=args.architecture, multiplier=args.multiplier, outputs=_outputs(args.outputs)
    )
    size = parse_size(args.input_size) if args.input_size else (src.fixed_input_size or (353, 481))

    eval_paths: list[Path] = []
    calib_sources = list(args.calibration)
    if args.report:
        if args.eval:
            for e in args.eval:
                ep = Path(e)
                eval_paths += list_images(ep) if ep.is_dir() else [ep]
        elif len(calib_sources) >= 1 and Path(calib_sources[0]).is_dir():
            cal_half, eval_paths = split_held_out(list_images(Path(calib_sources[0])))
            calib_sources = [str(p) for p in cal_half] + calib_sources[1:]
        if not eval_paths:
            raise EdgeposeError(
                "--report needs held-out evaluation images.",
                "pass --eval FOLDER, or a --calibration folder (half of it is then held out).",
            )
    calibration = None
    if "int8" in precisions:
        calibration = load_calibration(calib_sources, video_frames_per_file=args.video_frames, exclude=eval_paths)
    quant = QuantOptions(
        io_type=args.io_type,
        per_channel=not args.per_tensor,
        float_heads=args.float_heads,
        mirror=not args.no_mirror,
        rounding=args.rounding,
        equalize=args.equalize,
    )

    written: dict[str, Path] = {}
    for prec in precisions:
        out = args.out or default_output_path(src, prec, size, args.out_dir or Path("."))
        res = convert(
            src,
            prec,
            size,
            out,
            calibration=calibration,
            quant=quant,
            edgetpu=args.edgetpu and prec == "int8",
            name=args.name,
            progress=progress,
        )
        written[prec] = res.path
        extra = f"  (max |diff| vs source: {max(res.max_abs_diff.values()):.2g})" if prec == "float32" else ""
        print(f"{prec:<8} {res.path}  {res.size_bytes / 1e6:.2f} MB{extra}")
        if res.compat is not None:
            c = res.compat
            print(
                f"         Edge TPU (offline check): {c.tpu_ops} of {len(c.ops)} ops would run on the Edge TPU"
                + (f"; CPU: {', '.join(sorted({o.op for o in c.cpu_ops}))}" if c.cpu_ops else "")
            )
        for n in res.notes:
            print(f"         {n}")
    if args.report:
        report = fidelity_report(
            written,
            eval_paths,
            src=src,
            threads=args.threads,
            progress=progress,
            extra={"calibration": {"sources": [str(s) for s in args.calibration], "images": len(calibration or [])}},
        )
        print(format_table(report))
        if args.report != "-":
            write_report(report, Path(args.report))
            print(f"report written to {args.report}")
        else:
            print(json.dumps(report))
    return 0


def _check_edgetpu(path: Path) -> int:
    from edgepose_convert.edgetpu import compatibility_report

    try:
        buf = path.read_bytes()
    except OSError as e:
        raise EdgeposeError(f"cannot read {path} ({e.strerror}).", "pass an existing .tflite file.") from None
    print(compatibility_report(buf).table())
    return 0
