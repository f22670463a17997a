"""``edgepose compile``: compile (or load) the numba multi-pose decoder into its on-disk cache.

First boot runs it as the service's user with the service's cache directory: on a slow board the
first compile takes minutes, longer than the unit may take to start.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compile",
        help="compile the numba decoder into its cache (first boot runs it)",
        description=__doc__.split("\n\n")[0],
    )
    p.set_defaults(func=cmd_compile)


def cmd_compile(args: argparse.Namespace) -> int:
    from ..decode import compiled
    from ..paths import numba_cache_dir

    for dtype in compiled.COMMON_DTYPES:  # float models and uint8 ones (Coral, Edge TPU)
        seconds, how = compiled.warm_up(dtype)
        print(f"multi-pose decoder ({dtype} heads): {how} in {seconds:.1f} s ({numba_cache_dir()})")
    return 0
