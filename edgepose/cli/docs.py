"""``edgepose docs``: rewrite the generated parts of the guides (the config reference) from the code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "docs",
        help="rewrite the generated parts of the guides (the config reference); --check them",
        description="Rewrite each `<!-- generated: config ... -->` part of the guides from the config "
        "models (see edgepose/docgen.py). Run it in the checkout after changing a config field.",
    )
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="Markdown files (default: the checkout's README.md and every guide it links)",
    )
    p.add_argument(
        "--check", action="store_true", help="change nothing: name each out-of-date file and exit 1 if there is one"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..docgen import FIX, REPO, DocsError, guides, stale

    files = args.files
    if not files:
        if not (REPO / "README.md").is_file():
            raise DocsError(
                f"no README.md in {REPO}: the guides are in the checkout, not in an installed wheel.",
                'run it from a checkout installed with pip install -e ".[dev]", or name the Markdown FILEs.',
            )
        files = guides()
    out_of_date = stale(files, write=not args.check)
    for f in out_of_date:
        print(
            f"{_shown(f)}: {'out of date' if args.check else 'rewritten'}",
            file=sys.stderr if args.check else sys.stdout,
        )
    if args.check and out_of_date:
        print(
            f"edgepose docs: {len(out_of_date)} of {len(files)} file{'s' if len(files) > 1 else ''} out of date. "
            f"Fix: run `{FIX}{''.join(' ' + str(f) for f in args.files)}` and commit the result.",
            file=sys.stderr,
        )
        return 1
    if not out_of_date:
        print(f"{len(files)} file{'s' if len(files) > 1 else ''} up to date")
    return 0


def _shown(f: Path) -> str:
    try:
        return str(f.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(f)
