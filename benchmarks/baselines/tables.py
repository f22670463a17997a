"""Plain-text tables for the benchmark scripts (one printer, so every table reads alike)."""

from __future__ import annotations

from typing import Sequence


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> None:
    """Print ``title`` (after a blank line), then ``header`` and ``rows`` in columns two spaces apart.

    ``align`` has one letter per column, ``l`` (the default) or ``r`` (numbers); columns it does not reach are left-aligned.
    """
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    right = [i < len(align) and align[i] == "r" for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
