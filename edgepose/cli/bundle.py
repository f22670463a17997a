"""``edgepose bundle``: the offline payload for a device (see edgepose/provision/bundle.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    from ..provision.wheels import DEFAULT_PYTHON, TARGETS

    p = sub.add_parser(
        "bundle",
        help="make the offline install payload for a device (wheels, models, configs, manifest)",
        description="Build the edgepose wheel from this checkout, download aarch64 wheels of every runtime dependency "
        "(resolved from pyproject.toml, cached), add the profile's model, the device config, the board profile, the "
        "unit and firstboot.sh, and a sha256 manifest. First boot installs from it with pip --no-index.",
    )
    p.add_argument("--profile", required=True, help="board profile name or file (edgepose profiles list)")
    p.add_argument("--config", required=True, help="device config (TOML), e.g. firmware_configs/device.toml")
    p.add_argument(
        "--python",
        default=DEFAULT_PYTHON,
        choices=sorted(TARGETS),
        help=f"the device's Python: 3.11 = Raspberry Pi OS Bookworm, 3.13 = Trixie (default {DEFAULT_PYTHON})",
    )
    p.add_argument("--out", required=True, help="output folder, or FILE.tar")
    p.add_argument(
        "--refresh", action="store_true", help="resolve wheels from the package index even if the cache has them"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..provision.bundle import make_bundle

    res = make_bundle(
        args.profile,
        args.config,
        args.out,
        python=args.python,
        refresh=args.refresh,
        progress=False if args.no_progress else None,
    )
    print(
        f"bundle {res.path}: profile {res.profile}, Python {res.python}, {len(res.wheels)} wheels, "
        f"models {', '.join(res.models) or 'none'}, {res.size_bytes / 1e6:.1f} MB in {res.seconds:.1f} s"
    )
    print(f"apt packages first boot installs if missing: {' '.join(res.apt_packages)}")
    sys.stdout.flush()
    return 0
