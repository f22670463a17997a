"""``edgepose reloc``: camera relocalization (PoseNet of Kendall et al.): data, training, evaluation, prediction.

  edgepose reloc synth   --out data/room --images ../shared/images     # render a photo-textured room dataset
  edgepose reloc train   --data data/room --out-dir models/            # train, export float32 + int8, report
  edgepose reloc eval    --model models/reloc_..._int8.tflite --data data/room
  edgepose reloc predict --model models/reloc_..._int8.tflite photo.jpg [...]

Datasets are folders with dataset_train.txt / dataset_test.txt in the Cambridge
Landmarks / 7-Scenes format (edgepose/relocalization/README.md). ``synth`` and ``train``
run on a workstation (``train`` needs TensorFlow: pip install -e ".[train]" in the checkout);
``eval`` and ``predict`` use the device runtime only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import EdgeposeError
from ..tflogs import import_tensorflow_for_training


def register(sub: argparse._SubParsersAction) -> None:
    # Light imports (no TensorFlow): edgepose_convert installs with edgepose, only its TensorFlow is an extra.
    from edgepose_convert.relocalization.dataset import SPLITS
    from edgepose_convert.relocalization.model import ARCHS

    p = sub.add_parser(
        "reloc",
        help="camera relocalization: synthesise data, train, evaluate, predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rsub = p.add_subparsers(dest="reloc_command", metavar="ACTION")
    rsub.required = True

    s = rsub.add_parser("synth", help="render a synthetic room (walls textured with photos) at known camera poses")
    s.add_argument(
        "--out", "-o", required=True, help="dataset folder to create (dataset_train.txt, dataset_test.txt, images)"
    )
    s.add_argument(
        "--images",
        default=str(Path("..") / "shared" / "images"),
        help="folder of photographs for the walls (default ../shared/images)",
    )
    s.add_argument("--train", type=int, default=1500, help="training images (random poses; default 1500)")
    s.add_argument("--test", type=int, default=300, help="test images (a held-out walk; default 300)")
    s.add_argument("--size", default="224x168", help="image size WxH (default 224x168)")
    s.add_argument("--hfov", type=float, default=60.0, help="horizontal field of view, degrees (default 60)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="rendering processes (default: the cores, at most 4)",
    )
    s.set_defaults(func=cmd_synth)

    t = rsub.add_parser(
        "train", help="train on a dataset, export .tflite per precision and report accuracy vs the mean-pose baseline"
    )
    t.add_argument("--data", "-d", required=True, help="dataset folder (dataset_train.txt + dataset_test.txt)")
    t.add_argument("--out-dir", "-o", default=".", help="where the .tflite files and report.json go (default: .)")
    t.add_argument("--name", help="model name (default reloc_<scene>_<arch>_<size>)")
    t.add_argument("--arch", choices=ARCHS, default="small", help="backbone (default small)")
    t.add_argument("--input-size", type=int, default=128, help="square model input side (default 128)")
    t.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3, help="initial learning rate (cosine decay; default 2e-3)")
    t.add_argument(
        "--beta", type=float, help="Kendall's orientation weight beta (default: balanced from the training poses)"
    )
    t.add_argument("--no-augment", action="store_true", help="no brightness/contrast jitter")
    t.add_argument(
        "--precisions",
        default="float32,int8",
        help="comma-separated: float32, float16, dynamic, int8 (default float32,int8)",
    )
    t.add_argument("--threads", type=int, default=2, help="threads for evaluating the .tflite files")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train)

    e = rsub.add_parser(
        "eval", help="median position/orientation errors of a .tflite on a dataset split, vs the mean-pose baseline"
    )
    e.add_argument("--model", "-m", required=True, help="relocalization .tflite")
    e.add_argument("--data", "-d", required=True, help="dataset folder or a dataset_*.txt file")
    e.add_argument("--split", default="test", choices=SPLITS)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=cmd_eval)

    r = rsub.add_parser(
        "predict", aliases=["run"], help="print the camera pose for each image (one JSON object per line)"
    )
    r.add_argument("--model", "-m", required=True, help="relocalization .tflite")
    r.add_argument("images", nargs="+", help="image files")
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(func=cmd_predict)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EdgeposeError(f"size {text!r} is not WxH.", "write it as width x height, e.g. --size 224x168.") from None
    if w < 16 or h < 16:
        raise EdgeposeError(f"size {text!r} is too small.", "use at least 16x16.")
    return w, h


def cmd_synth(args: argparse.Namespace) -> int:
    from edgepose_convert.relocalization.dataset import write_synthetic

    if args.train < 2 or args.test < 1:
        raise EdgeposeError("--train must be >= 2 and --test >= 1.", "fix the counts.")
    files = write_synthetic(
        args.out,
        args.images,
        args.train,
        args.test,
        _size(args.size),
        args.seed,
        args.hfov,
        workers=max(1, args.workers),
        progress=None,
    )
    for split, f in files.items():
        print(f"{split}: {f}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from edgepose_convert.model_types import PRECISIONS
    from edgepose_convert.relocalization.train import TrainSettings, format_table, train_and_export

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise EdgeposeError(
            f"unknown precision(s) {bad or args.precisions!r}.",
            f"use a comma-separated list of {', '.join(PRECISIONS)}.",
        )
    if args.epochs < 1 or args.input_size < 32 or args.batch_size < 1:
        raise EdgeposeError("--epochs must be >= 1, --input-size >= 32 and --batch-size >= 1.", "fix the value.")
    if args.beta is not None and args.beta <= 0:
        raise EdgeposeError(
            f"--beta must be positive (got {args.beta}).",
            "pass e.g. --beta 1, or leave it out to balance it automatically.",
        )
    import_tensorflow_for_training()
    settings = TrainSettings(
        input_size=args.input_size,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        beta=args.beta,
        augment=not args.no_augment,
        seed=args.seed,
    )
    report = train_and_export(
        args.data, args.out_dir, settings, precisions, name=args.name, threads=args.threads, progress=None
    )
    out = Path(args.out_dir) / "report.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_table(report))
    print(f"beta = {report['beta']:.3f}; trained in {report['train_seconds']:.0f} s; report: {out}")
    for prec, ex in report["exports"].items():
        print(f"{prec}: {ex['path']} ({ex['size_bytes'] / 1024:.0f} KB)" + "".join(f"\n  {n}" for n in ex["notes"]))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from edgepose_convert.relocalization.dataset import read_bgr, read_dataset, split_file
    from edgepose_convert.relocalization.train import MeanPose, evaluate_tflite, pose_errors

    ds = read_dataset(split_file(args.data, args.split))
    res = {
        "model": evaluate_tflite(
            args.model, read_bgr(ds, progress=None), ds.positions, ds.orientations, threads=args.threads, progress=None
        )
    }
    data = Path(args.data)
    train_txt = data / "dataset_train.txt" if data.is_dir() else data.parent / "dataset_train.txt"
    if train_txt.is_file():
        tr = read_dataset(train_txt, check_images=False)
        bp, bq = MeanPose.fit(tr.positions, tr.orientations).predict(len(ds))
        res["mean-pose baseline"] = pose_errors(bp, bq, ds.positions, ds.orientations)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for label, r in res.items():
        extra = f", {r['invoke_ms']:.2f} ms/invoke" if "invoke_ms" in r else ""
        print(
            f"{label:<20} median position {r['median_position']:.3f} {ds.units}, median orientation {r['median_orientation_deg']:.2f} deg (n={r['n']}){extra}"
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..relocalization import CameraPoseEstimator
    from ..sources.images import read_image

    est = CameraPoseEstimator(args.model, threads=args.threads)
    failed = 0
    for path in args.images:
        try:
            img = read_image(path)
        except EdgeposeError as e:
            print(f"edgepose reloc predict: {e.problem} Skipped.", file=sys.stderr)
            failed += 1
            continue
        d = est.estimate(img).to_dict()
        print(json.dumps({"image": path, **d}), flush=True)
    return 1 if failed else 0
