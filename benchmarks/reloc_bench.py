"""Camera relocalization benchmark: a full training run on the synthetic photo room, per precision.

    python benchmarks/reloc_bench.py                 # render, train, export float32/float16/dynamic/int8, evaluate
    python benchmarks/reloc_bench.py --data DIR      # reuse a dataset (e.g. from `edgepose reloc synth`)

Prints, for the held-out test walk: median position error (m) and median
orientation error (deg) of the mean-pose baseline, the Keras model and each
exported .tflite run by the device runtime (full-size image -> crop -> TFLite),
their ratios to the baseline, model size and invoke latency on this machine
(with its ratio to float32, measured in the same process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="existing dataset folder (default: render one into a temporary folder)")
    ap.add_argument("--train", type=int, default=1200, help="training renders (default 1200)")
    ap.add_argument("--test", type=int, default=300, help="test renders along the held-out walk (default 300)")
    ap.add_argument("--size", default="171x128", help="render size WxH (default 171x128)")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--arch", default="small", choices=("small", "mobilenetv2"))
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--precisions", default="float32,float16,dynamic,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="rendering processes")
    ap.add_argument("--out", help="keep models and report.json here (default: a temporary folder)")
    ap.add_argument("--quiet", action="store_true", help="no Keras progress bars")
    args = ap.parse_args(argv)

    from edgepose_convert.relocalization.dataset import write_synthetic
    from edgepose_convert.relocalization.train import TrainSettings, format_table, train_and_export

    tmp = tempfile.TemporaryDirectory(prefix="reloc_bench_")
    work = Path(args.out) if args.out else Path(tmp.name)
    data = Path(args.data) if args.data else work / "data"
    t0 = time.perf_counter()
    if not args.data:
        w, h = (int(v) for v in args.size.split("x"))
        write_synthetic(data, SHARED / "images", args.train, args.test, (w, h), seed=0, workers=args.workers)
    t_render = time.perf_counter() - t0
    settings = TrainSettings(input_size=args.input_size, arch=args.arch, epochs=args.epochs)
    report = train_and_export(
        data,
        work / "models",
        settings,
        [p.strip() for p in args.precisions.split(",")],
        threads=args.threads,
        progress=not args.quiet,
    )
    report["render_seconds"] = t_render
    report["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(
        f"scene {report['scene']}: {report['n_train']} training renders, {report['n_test']} test renders (held-out walk); "
        f"input {args.input_size}x{args.input_size}, arch {args.arch}, {args.epochs} epochs, beta {report['beta']:.3f}"
    )
    print(
        f"render {t_render:.0f} s, training {report['train_seconds']:.0f} s on {os.cpu_count()} cores; threads for TFLite: {args.threads}"
    )
    print()
    print(format_table(report))
    tf_fit = report["train_fit"]
    print(
        f"\nfit on the training renders (Keras): median {tf_fit['median_position']:.3f} m, {tf_fit['median_orientation_deg']:.2f} deg"
    )
    for prec, ex in report["exports"].items():
        for n in ex["notes"]:
            print(f"{prec}: {n}")
    if args.out:
        print(f"\nmodels and report.json in {work}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
