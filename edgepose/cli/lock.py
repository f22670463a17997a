"""``edgepose lock``: check the device's dependency lock against pyproject.toml, or regenerate it (--write)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from ..provision.lock import LOCK

    p = sub.add_parser(
        "lock",
        help=f"check {LOCK} against pyproject.toml; --write regenerates it",
        description=f"The pins of every wheel a device installs, with their sha256, per target Python: {LOCK}, "
        "shared by edgepose bundle and Dockerfile.arm64. Without --write, check that the lock still satisfies "
        "pyproject.toml (offline). Run in the checkout.",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help=f"resolve pyproject.toml's dependencies for every bundle target and rewrite {LOCK} (needs the package index once)",
    )
    p.add_argument(
        "--refresh", action="store_true", help="with --write: resolve from the package index, not the wheel cache"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..provision import wheels
    from ..provision.lock import LOCK, lock_text, locked_requirements, pins_for
    from ..provision.wheels import TARGETS

    root = wheels.source_root()  # the checkout: the lock and pyproject.toml are there
    if not args.write:
        for t in TARGETS.values():
            print(f"Python {t.python}: {len(locked_requirements(root, t))} pins, consistent with pyproject.toml")
        return 0
    pins = [p for t in TARGETS.values() for p in pins_for(t, root, args.refresh)]
    (root / LOCK).write_text(lock_text(pins), encoding="utf-8")
    print(f"{LOCK}: {len(pins)} pins for Python {', '.join(TARGETS)}")
    return 0
