"""Which block device ``edgepose flash --write`` may overwrite, decided from ``lsblk --json -b``.

Refused: a disk that holds ``/`` or ``/boot`` (also ``/boot/firmware``, ``/boot/efi``), a
non-removable disk, a disk with a mounted partition, a read-only disk (an SD card's lock switch),
an empty card reader, a partition instead of a whole disk, a disk smaller than the image, and
a disk larger than 256 GB unless ``--force`` (SD cards for a Pi are smaller; a larger "card" is
more likely a backup drive). Each refusal is one line naming the disk, the reason and the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from ..errors import EdgeposeError

LSBLK_COLUMNS = "NAME,PATH,SIZE,TYPE,RM,HOTPLUG,RO,TRAN,MODEL,MOUNTPOINTS"
#: Tests (and dry runs) read a recorded ``lsblk --json -b`` output from this file instead.
LSBLK_JSON_ENV = "EDGEPOSE_LSBLK_JSON"
MAX_BYTES = 256 * 10**9
SYSTEM_MOUNTS = ("/", "/boot", "/boot/firmware", "/boot/efi", "/usr", "/var", "/home")
#: Transports of card readers: USB readers and SD slots (lsblk reports ``mmc`` for mmcblk devices).
REMOVABLE_TRANSPORTS = {"usb", "mmc"}


class DiskRefused(EdgeposeError):
    """A target disk that ``--write`` will not touch."""


@dataclass
class Disk:
    name: str
    path: str
    size: int
    type: str
    removable: bool
    hotplug: bool
    readonly: bool
    tran: str | None
    model: str | None
    mountpoints: list[str] = field(default_factory=list)
    children: list[Disk] = field(default_factory=list)

    def all_mounts(self) -> list[str]:
        out = list(self.mountpoints)
        for c in self.children:
            out += c.all_mounts()
        return out

    def mounted_parts(self) -> list[tuple[str, str]]:
        out = [(self.path, m) for m in self.mountpoints]
        for c in self.children:
            out += c.mounted_parts()
        return out

    @property
    def label(self) -> str:
        model = f" ({self.model.strip()})" if self.model and self.model.strip() else ""
        return f"{self.path}{model}, {self.size / 1e9:.1f} GB"


def _flag(v: Any) -> bool:
    # lsblk >= 2.33 prints JSON booleans; older ones "0"/"1" strings.
    if isinstance(v, str):
        return v.strip() in ("1", "true")
    return bool(v)


def _disk(d: dict[str, Any]) -> Disk:
    mounts = d.get("mountpoints")
    if mounts is None:  # lsblk < 2.37: one MOUNTPOINT column
        mounts = [d.get("mountpoint")]
    path = d.get("path") or f"/dev/{d['name']}"
    return Disk(
        name=d["name"],
        path=path,
        size=int(d.get("size") or 0),
        type=str(d.get("type") or ""),
        removable=_flag(d.get("rm")),
        hotplug=_flag(d.get("hotplug")),
        readonly=_flag(d.get("ro")),
        tran=d.get("tran"),
        model=d.get("model"),
        mountpoints=[m for m in mounts if m],
        children=[_disk(c) for c in d.get("children", [])],
    )


def parse_lsblk(data: str | dict[str, Any]) -> list[Disk]:
    obj = json.loads(data) if isinstance(data, str) else data
    return [_disk(d) for d in obj.get("blockdevices", [])]


def read_lsblk() -> list[Disk]:
    recorded = os.environ.get(LSBLK_JSON_ENV)
    if recorded:
        with open(recorded, encoding="utf-8") as f:
            return parse_lsblk(f.read())
    try:
        r = subprocess.run(["lsblk", "--json", "-b", "-o", LSBLK_COLUMNS], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DiskRefused(
            "lsblk is not installed, so the target disk cannot be checked.", "install util-linux."
        ) from None
    if r.returncode != 0:
        # lsblk < 2.37 has no MOUNTPOINTS column
        r = subprocess.run(
            ["lsblk", "--json", "-b", "-o", LSBLK_COLUMNS.replace("MOUNTPOINTS", "MOUNTPOINT")],
            capture_output=True,
            text=True,
            check=False,
        )
    if r.returncode != 0:
        raise DiskRefused(f"lsblk failed: {r.stderr.strip()}", "check the device name with `lsblk`.")
    return parse_lsblk(r.stdout)


def _find(disks: list[Disk], device: str) -> tuple[Disk | None, Disk | None]:
    """(the entry for ``device``, its parent disk if it is a partition)."""
    for d in disks:
        if device in (d.path, f"/dev/{d.name}", d.name):
            return d, None
        for c in d.children:
            if device in (c.path, f"/dev/{c.name}", c.name):
                return c, d
    return None, None


def check_target(disks: list[Disk], device: str, *, image_size: int = 0, force: bool = False) -> Disk:
    """The disk ``device`` if it may be overwritten; :class:`DiskRefused` otherwise."""
    real = os.path.realpath(device) if device.startswith("/dev/disk/") else device
    d, parent = _find(disks, real)
    cards = [
        x.label
        for x in disks
        if x.type == "disk"
        and (x.removable or x.hotplug or x.tran in REMOVABLE_TRANSPORTS)
        and x.size > 0
        and not any(m in SYSTEM_MOUNTS for m in x.all_mounts())
    ]
    hint = f"removable disks here: {'; '.join(cards)}." if cards else "no removable disk is attached; insert the card."
    if d is None:
        raise DiskRefused(
            f"{device} is not a block device on this machine.", f"pick the card's whole-disk device; {hint}"
        )
    if parent is not None or d.type != "disk":
        whole = parent.path if parent is not None else "the whole disk"
        raise DiskRefused(f"{d.path} is a {d.type or 'partition'}, not a whole disk.", f"write to {whole} instead.")
    system = sorted({m for m in d.all_mounts() if m in SYSTEM_MOUNTS or m == "[SWAP]"})
    if system:
        raise DiskRefused(f"{d.label} holds {', '.join(system)} of the running system.", f"never overwrite it; {hint}")
    if not (d.removable or d.hotplug or d.tran in REMOVABLE_TRANSPORTS):
        raise DiskRefused(
            f"{d.label} is not a removable disk (transport {d.tran or 'internal'}).", f"write to an SD card; {hint}"
        )
    if d.size == 0:
        raise DiskRefused(f"{d.path} has no medium (an empty card reader).", "insert the card and try again.")
    if d.readonly:
        raise DiskRefused(
            f"{d.label} is read-only.", "slide the SD card's lock switch to unlocked and insert it again."
        )
    mounted = d.mounted_parts()
    if mounted:
        where = ", ".join(f"{p} on {m}" for p, m in mounted)
        cmds = " ".join(sorted({p for p, _ in mounted}))
        raise DiskRefused(f"{d.label} has mounted partitions ({where}).", f"unmount them first: sudo umount {cmds}")
    if d.size > MAX_BYTES and not force:
        raise DiskRefused(
            f"{d.label} is larger than 256 GB, unusual for a Pi's SD card.",
            "check it is the card (lsblk), then add --force.",
        )
    if image_size and d.size < image_size:
        raise DiskRefused(f"{d.label} is smaller than the image ({image_size / 1e9:.1f} GB).", "use a larger card.")
    return d
