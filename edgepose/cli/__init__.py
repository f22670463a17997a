"""``edgepose`` command line: one sub-command module per concern.

Each module in :data:`COMMANDS` has ``register(subparsers)`` that adds its
parser and sets ``func(args) -> int``. Modules are imported lazily so that
``edgepose run`` never imports the converter (TensorFlow) or the trainer.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import EdgeposeError

#: sub-command -> module (relative to this package)
COMMANDS: dict[str, str] = {
    "run": ".run",
    "models": ".models",
    "probe": ".probe",
    "serve": ".serve",
    "listen": ".listen",
    "actions": ".actions",
    "convert": ".convert",
    "reloc": ".reloc",
    "bundle": ".bundle",
    "lock": ".lock",
    "view": ".view",
    "flash": ".flash",
    "config": ".config",
    "compile": ".compile",
    "profiles": ".profiles",
    "docs": ".docs",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="edgepose", description="PoseNet on small devices.")
    parser.add_argument("--version", action="version", version=f"edgepose {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, mod in COMMANDS.items():
        if only is not None and name != only:
            # Still list it in --help without importing it.
            sub.add_parser(name, help=f"(see edgepose {name} --help)")
            continue
        importlib.import_module(mod, __name__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the module of the command being run.
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..tflogs import configure as configure_tf_logs

    configure_tf_logs(args.verbose)  # before any command imports TensorFlow: its own logs only with -v
    try:
        return int(args.func(args) or 0)
    except EdgeposeError as e:
        print(f"edgepose {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"edgepose {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `edgepose ... | head`: the reader left; stop quietly like other Unix tools.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
