"""Outbox file sizes and cost per event: edgepose's checkpoint settings against SQLite's defaults.

Stores ``--events`` events one transaction each (as the service does, ``synchronous=FULL``), acknowledging
each ``--lag`` events later (a connected device) or never (``--lag 0``: a broker outage), and reports the
largest write-ahead log and total size seen, the sizes left at the end, and ms per event, with ratios
against the baseline (SQLite's defaults: a 1000-page checkpoint and no size limit) run in the same process.

    python benchmarks/outbox_files.py                 # connected device and outage, in a temporary folder
    python benchmarks/outbox_files.py --dir /mnt/sd   # on the storage the outbox will use
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.baselines.tables import table
from edgepose.mqtt import outbox as ob

PAYLOAD = b"x" * 260  # the size of a typical events payload


def _sizes(path: Path) -> dict[str, int]:
    return {
        s or "db": os.path.getsize(f"{path}{s}") for s in ("", "-wal", "-shm", ".acked") if os.path.exists(f"{path}{s}")
    }


def run(path: Path, events: int, lag: int, baseline: bool) -> dict[str, float]:
    for s in ("", "-wal", "-shm", ".acked"):
        Path(f"{path}{s}").unlink(missing_ok=True)
    box = ob.Outbox(path, max_events=10 * events)
    if baseline:
        # SQLite's defaults, as the outbox had them before.
        box._db.execute("PRAGMA wal_autocheckpoint=1000")
        box._db.execute("PRAGMA journal_size_limit=-1")
    max_wal = max_total = 0
    t0 = time.perf_counter()
    for i in range(events):
        box.put("edgepose/dev/events", PAYLOAD)
        if lag and i >= lag:
            box.ack(i - lag + 1)
        sizes = _sizes(path)
        max_wal = max(max_wal, sizes.get("-wal", 0))
        max_total = max(max_total, sum(sizes.values()))
    ms = (time.perf_counter() - t0) / events * 1e3
    end = _sizes(path)
    box.close()
    return {"ms": ms, "max_wal": max_wal, "max_total": max_total, "end_wal": end.get("-wal", 0), "end_db": end["db"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--dir", default=None, help="folder for the test files (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        rows = []
        for lag, label in ((20, "connected (acked 20 later)"), (0, "outage (never acked)")):
            base = run(Path(d) / "base.sqlite", args.events, lag, baseline=True)
            ours = run(Path(d) / "ours.sqlite", args.events, lag, baseline=False)
            rows.append((label, base, ours))
    print(
        f"{args.events} events of {len(PAYLOAD)} bytes, one transaction each, synchronous=FULL; "
        f"edgepose: wal_autocheckpoint={ob.WAL_AUTOCHECKPOINT}, journal_size_limit={ob.JOURNAL_SIZE_LIMIT}"
    )
    cells = []
    for label, base, ours in rows:
        for name, r in (("sqlite", base), ("edgepose", ours)):
            cells.append(
                [
                    label,
                    name,
                    f"{r['ms']:.2f}",
                    f"{r['max_wal'] / 1024:.0f}",
                    f"{r['max_total'] / 1024:.0f}",
                    f"{r['end_wal'] / 1024:.0f}",
                    f"{r['end_db'] / 1024:.0f}",
                ]
            )
        cells.append(
            [
                "",
                "ratio",
                f"{ours['ms'] / base['ms']:.2f}",
                f"{ours['max_wal'] / max(base['max_wal'], 1):.2f}",
                f"{ours['max_total'] / max(base['max_total'], 1):.2f}",
                "",
                "",
            ]
        )
    table(
        "The outbox's files",
        ["case", "settings", "ms/event", "max WAL KiB", "max total KiB", "end WAL KiB", "end db KiB"],
        cells,
        "llrrrrr",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
