"""``edgepose config``: check a device config (errors with the line of the offending key), and the JSON Schema for editors."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help="check a device config; print or write its JSON Schema",
        description="Tools for the device config (device.toml and board profiles).",
    )
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = cmds.add_parser(
        "check",
        help="validate FILE over its board profile; each error as FILE:LINE: field: message",
        description="Validate a device config as edgepose serve loads it: over its board profile (--board, "
        "$EDGEPOSE_BOARD or board.toml beside FILE). Each problem is one line FILE:LINE: field.path: message. "
        "Exit 0 when valid, 2 otherwise.",
    )
    c.add_argument("file", metavar="FILE", help="the device config (TOML)")
    c.add_argument("--board", help="board profile (a name from edgepose profiles list, or a file)")
    c.set_defaults(func=check)
    s = cmds.add_parser(
        "schema",
        help="print the JSON Schema of the device config (or --write it)",
        description="The JSON Schema of the device config, generated from edgepose's config models; "
        "edgepose ships it as edgepose/schemas/config.schema.json for editors.",
    )
    s.add_argument("--write", metavar="PATH", help="write it to PATH instead of printing")
    s.set_defaults(func=schema)


def check(args: argparse.Namespace) -> int:
    from ..config_check import check_file

    problems = check_file(args.file, args.board)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(
            f"edgepose config check: {args.file}: {len(problems)} problem{'s' if len(problems) > 1 else ''}. "
            "Fix: correct each line shown (firmware_configs/CONFIG.md lists every key).",
            file=sys.stderr,
        )
        return 2
    print(f"{args.file}: valid")
    return 0


def schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config_check import schema_text, write_schema

    if args.write:
        print(f"{args.write}: {'written' if write_schema(Path(args.write)) else 'already up to date'}")
    else:
        print(schema_text(), end="")
    return 0
