"""``edgepose profiles``: board profiles for edgepose devices (also ``python -m edgepose.profiles``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import ConfigError


def _add_arguments(ap: argparse.ArgumentParser) -> None:
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("detect", help="print the profile name for this board")
    d.add_argument("--model-file", default=os.environ.get("EDGEPOSE_DT_MODEL", "/proc/device-tree/model"))
    d.add_argument("--usb-root", default=os.environ.get("EDGEPOSE_USB_ROOT", "/sys/bus/usb/devices"))
    sub.add_parser("list", help="list known profiles")
    s = sub.add_parser("show", help="print a profile file")
    s.add_argument("name")
    m = sub.add_parser("merged", help="print the validated, layered config as JSON")
    m.add_argument("device", nargs="?", help="device config (TOML)")
    m.add_argument(
        "--board", help="profile name or file (default: $EDGEPOSE_BOARD or board.toml beside the device config)"
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "profiles", help="board profiles: detect, list, show, merged", description=__doc__.split("\n\n")[0]
    )
    _add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import profiles as pr

    if args.cmd == "detect":
        print(pr.detect_board(pr.read_device_model(args.model_file), pr.read_usb_ids(args.usb_root)))
    elif args.cmd == "list":
        for name, path in sorted(pr.list_profiles().items()):
            print(f"{name:16s} {pr.profile_description(path)}  ({path})")
    elif args.cmd == "show":
        print(pr.find_profile(args.name).read_text(encoding="utf-8"), end="")
    else:
        from ..config import load_config

        cfg = load_config(args.device, board=args.board)
        print(json.dumps(cfg.redacted(), indent=2))  # never print broker or stream passwords
    return 0


def main(argv: list[str] | None = None, prog: str = "edgepose profiles") -> int:
    """The command on its own (``python -m edgepose.profiles``, tests): exit code, errors on stderr."""
    ap = argparse.ArgumentParser(prog=prog, description="Board profiles for edgepose devices.")
    _add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return run(args)
    except ConfigError as e:
        print(f"edgepose profiles: error: {e}", file=sys.stderr)
        return e.exit_code
