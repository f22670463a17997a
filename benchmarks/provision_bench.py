"""Provisioning costs through the CLI: `edgepose bundle` (cold and warm wheel cache) and `edgepose flash`.

The image is the tests' Raspberry Pi OS-shaped MBR image (FAT32 boot partition of 300 MiB + a Linux
partition, 340 MiB in all), raw and .xz. Baselines, in the same process: copying the raw image
(`shutil.copyfile`) and decompressing the .xz (`lzma`) - what any tool must spend to produce a copy.
The cold bundle uses an empty EDGEPOSE_CACHE_DIR, so it downloads from the package index (network speed
dominates it). Run: ``python benchmarks/provision_bench.py`` (needs mtools, fdisk; the index for --cold).
"""

from __future__ import annotations

import argparse
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.baselines.tables import table  # noqa: E402
from tests.conftest_provision import make_pi_image  # noqa: E402 - the tests' image builder, not a copy of it
from tests.procs import EDGEPOSE  # noqa: E402

DEVICE = REPO / "firmware_configs" / "device.toml"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--profile", default="pi4")
    ap.add_argument("--cold", action="store_true", help="also bundle with an empty wheel cache (downloads)")
    args = ap.parse_args(argv)
    edgepose = list(EDGEPOSE)
    env = {
        **os.environ,
        "EDGEPOSE_MODEL_MIRROR": os.environ.get("EDGEPOSE_MODEL_MIRROR", str(REPO.parent / "shared" / "models")),
    }
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="edgepose-bench-") as tmp:
        work = Path(tmp)
        img = make_pi_image(work / "raspios.img", cloud_init=False)
        img_mib = img.stat().st_size / 2**20
        xz = work / "raspios.img.xz"
        with open(img, "rb") as fin, lzma.open(xz, "wb", preset=0) as fout:
            shutil.copyfileobj(fin, fout, 4 << 20)
        t = time.perf_counter()
        shutil.copyfile(img, work / "copy.img")
        copy_s = time.perf_counter() - t
        (work / "copy.img").unlink()
        t = time.perf_counter()
        with lzma.open(xz, "rb") as f:
            while f.read(4 << 20):
                pass
        unxz_s = time.perf_counter() - t
        rows.append(("baseline: copy the raw image (shutil.copyfile)", copy_s, "1.0x"))
        rows.append(("baseline: decompress the .xz (lzma)", unxz_s, "1.0x"))
        if args.cold:
            cold_env = {**env, "EDGEPOSE_CACHE_DIR": str(work / "cache")}
            s = timed(
                [
                    *edgepose,
                    "bundle",
                    "--profile",
                    args.profile,
                    "--config",
                    str(DEVICE),
                    "--out",
                    str(work / "cold"),
                    "--no-progress",
                ],
                cold_env,
            )
            rows.append(("edgepose bundle, cold wheel cache", s, "-"))
        bundle = work / "bundle"
        s = timed(
            [
                *edgepose,
                "bundle",
                "--profile",
                args.profile,
                "--config",
                str(DEVICE),
                "--out",
                str(bundle),
                "--no-progress",
            ],
            env,
        )
        rows.append(("edgepose bundle, warm wheel cache", s, "-"))
        size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
        base = [*edgepose, "flash", "--profile", args.profile, "--config", str(DEVICE), "--no-progress"]
        s = timed([*base, "--image", str(img), "--out", str(work / "o1.img"), "--bundle", str(bundle)], env)
        rows.append(("edgepose flash raw image, --bundle", s, f"{s / copy_s:.1f}x copy"))
        s = timed([*base, "--image", str(xz), "--out", str(work / "o2.img"), "--bundle", str(bundle)], env)
        rows.append(("edgepose flash .xz image, --bundle", s, f"{s / unxz_s:.1f}x unxz"))
        s = timed([*base, "--image", str(xz), "--out", str(work / "o3.img")], env)
        rows.append(("edgepose flash .xz image, bundle made on the fly", s, f"{s / unxz_s:.1f}x unxz"))
    print(f"image {img_mib:.0f} MiB, bundle {size / 1e6:.1f} MB ({args.profile}), {os.cpu_count()} cores")
    table(
        "Provisioning steps",
        ["step", "seconds", "ratio"],
        [[name, f"{sec:.2f}", ratio] for name, sec, ratio in rows],
        "lr",
    )


if __name__ == "__main__":
    main()
