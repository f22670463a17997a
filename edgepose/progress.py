"""Progress bars: one rule for when they show, one look for byte counts.

``progress=None`` (the default everywhere) lets tqdm decide: a bar on a terminal, nothing in pipes and logs.
``False`` (what ``--no-progress`` maps to) never draws one, ``True`` always does. Bars go to stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from tqdm import tqdm


def bar(
    total: int | None = None,
    desc: str = "",
    unit: str = "B",
    progress: bool | None = None,
    *,
    items: Iterable[Any] | None = None,
    **kw: Any,
) -> tqdm:
    """A tqdm bar to stderr; ``unit="B"`` counts bytes in KiB/MiB, ``items`` wraps an iterable."""
    from tqdm import tqdm  # on first use: the device service never draws one

    if unit == "B":
        kw.setdefault("unit_scale", True)
        kw.setdefault("unit_divisor", 1024)
    kw.setdefault("file", sys.stderr)
    return tqdm(items, total=total, desc=desc, unit=unit, disable=None if progress is None else not progress, **kw)


def shown(progress: bool | None, file: Any = None) -> bool:
    """Whether :func:`bar` draws for this ``progress`` (``None``: whether stderr is a terminal)."""
    if progress is not None:
        return progress
    f = file or sys.stderr
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):
        return False
