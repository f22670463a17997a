"""Model registry costs: resolving a cached model (sha256 re-check) and fetching one (folder and HTTP mirror).

Baselines, run in the same process: ``Path.exists`` for a cache hit, ``shutil.copyfile`` for a fetch.
Uses ../shared/models as the mirror; no internet. Run: ``python benchmarks/zoo_fetch.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.baselines.tables import table
from edgepose.model import zoo
from tests.conftest import SHARED
from tests.conftest_web import FileServer

MIRROR = SHARED / "models"
NAMES = ["posenet", "posenet-481x641-edgetpu"]


def timeit(fn, repeat: int) -> float:
    """Median seconds per call."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--models",
        nargs="+",
        default=NAMES,
        metavar="NAME",
        help=f"registry names to measure (default: {' '.join(NAMES)})",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=20,
        help="fetches per measurement; cache hits are measured 10x as often (default 20)",
    )
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="edgepose-bench-"))
    os.environ["EDGEPOSE_CACHE_DIR"] = str(tmp / "cache")
    server = FileServer(MIRROR)
    http_url = server.url
    rows = []
    try:
        for name in args.models:
            entry = zoo.get_entry(name)
            src = MIRROR / entry.primary.path
            mb = src.stat().st_size / 1e6
            copy_dst = tmp / "copy.bin"
            base_copy = timeit(lambda: shutil.copyfile(src, copy_dst), args.repeat)
            os.environ["EDGEPOSE_MODEL_MIRROR"] = str(MIRROR)
            folder = timeit(lambda: zoo.fetch(name, force=True, progress=False), args.repeat)
            os.environ["EDGEPOSE_MODEL_MIRROR"] = http_url
            http_t = timeit(lambda: zoo.fetch(name, force=True, progress=False), args.repeat)
            cached_path = zoo.fetch(name)
            base_hit = timeit(lambda: cached_path.exists(), 10 * args.repeat)
            hit = timeit(lambda: zoo.resolve_model(name), 10 * args.repeat)
            rows.append((entry.name.split("/")[-1], mb, base_copy, folder, http_t, base_hit, hit))
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)

    cells = [
        [
            n,
            f"{mb:.2f}",
            f"{bc * 1e3:.2f}",
            f"{fo * 1e3:.2f}",
            f"{fo / bc:.1f}",
            f"{ht * 1e3:.2f}",
            f"{ht / bc:.1f}",
            f"{mb / ht:.0f}",
            f"{bh * 1e6:.1f}",
            f"{hi * 1e3:.2f}",
            f"{hi / bh:.0f}",
        ]
        for n, mb, bc, fo, ht, bh, hi in rows
    ]
    table(
        "Fetching registry models (folder and HTTP mirror) and resolving cached ones",
        [
            "model",
            "MB",
            "copyfile ms",
            "fetch folder ms",
            "x copy",
            "fetch http ms",
            "x copy",
            "MB/s http",
            "exists us",
            "resolve ms",
            "x exists",
        ],
        cells,
        "lrrrrrrrrrr",
    )


if __name__ == "__main__":
    main()
