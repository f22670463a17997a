"""Disk images: copy (``.xz`` streamed), find the FAT boot partition, edit it without root.

The partition table is read with ``sfdisk --json`` (util-linux, works on image
files) and the FAT file system is edited in place with GNU mtools addressing the
partition by byte offset (``-i image@@offset``): no loop device, no mount, no root.
Why mtools rather than a Python FAT library: firmware_configs/README.md.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeposeError

CHUNK = 4 << 20
#: MBR partition types of FAT file systems (sfdisk prints them in hex without 0x).
FAT_MBR_TYPES = {"1", "4", "6", "b", "c", "e", "ef"}
#: GPT: Microsoft basic data and the EFI system partition.
FAT_GPT_TYPES = {"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"}


class ImageError(EdgeposeError):
    """An image that cannot be read or has no usable boot partition."""


def _tool(name: str, package: str) -> str:
    # sfdisk lives in /usr/sbin, which a normal user's PATH may not include.
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise ImageError(f"{name} is not installed.", f"install Debian's {package} package (apt install {package}).")
    return found


# --------------------------------------------------------------------------- copy


def copy_image(src: Path, dest: Path, progress: Callable[[int], None] | None = None) -> int:
    """Copy ``src`` (raw or ``.xz``) into the new file ``dest``; runs of zeros become holes. Returns the size.

    ``progress`` gets the number of *input* bytes consumed since the last call.
    """
    total = 0
    zero = bytes(CHUNK)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        decomp = lzma.LZMADecompressor() if src.suffix == ".xz" else None

        def put(data: bytes) -> None:
            nonlocal total
            for i in range(0, len(data), CHUNK):
                part = data[i : i + CHUNK]
                if part == (zero if len(part) == CHUNK else bytes(len(part))):
                    fout.seek(len(part), os.SEEK_CUR)  # sparse: a fresh Pi OS image is mostly zeros
                else:
                    fout.write(part)
                total += len(part)

        while True:
            raw = fin.read(CHUNK)
            if not raw:
                break
            if decomp is None:
                put(raw)
            else:
                try:
                    # max_length bounds memory: xz of a 5 GB image of zeros is a few kB.
                    put(decomp.decompress(raw, CHUNK))
                    while not decomp.needs_input and not decomp.eof:
                        put(decomp.decompress(b"", CHUNK))
                except lzma.LZMAError as e:
                    raise ImageError(f"{src} is not a valid .xz file ({e}).", "download the image again.") from None
            if progress:
                progress(len(raw))
        if decomp is not None and not decomp.eof:
            raise ImageError(
                f"{src} ends before its .xz stream does (truncated download).", "download the image again."
            )
        fout.truncate(total)
    return total


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str


def partitions(image: Path) -> tuple[str, list[Partition]]:
    """(label ``dos``/``gpt``, partitions) of an image file."""
    r = subprocess.run([_tool("sfdisk", "fdisk"), "--json", str(image)], capture_output=True, text=True, check=False)
    if r.returncode != 0 or not r.stdout.strip():
        return "", []
    table = json.loads(r.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    parts = []
    for i, p in enumerate(table.get("partitions", []), 1):
        m = re.search(r"(\d+)$", p.get("node", ""))
        parts.append(
            Partition(int(m.group(1)) if m else i, int(p["start"]) * sector, int(p["size"]) * sector, str(p["type"]))
        )
    return table.get("label", ""), parts


def _is_fat(image: Path, offset: int) -> bool:
    with open(image, "rb") as f:
        f.seek(offset)
        boot = f.read(512)
    return len(boot) == 512 and boot[510:512] == b"\x55\xaa" and (boot[54:57] == b"FAT" or boot[82:85] == b"FAT")


def find_boot_partition(image: Path, name: str | None = None) -> Partition:
    """The first partition holding a FAT file system (Raspberry Pi OS: partition 1, ``bootfs``)."""
    label, parts = partitions(image)
    for p in parts:
        typ = p.type.upper() if label == "gpt" else p.type.lower()
        if (typ in FAT_GPT_TYPES or typ in FAT_MBR_TYPES) and _is_fat(image, p.start):
            return p
    what = (
        f"no partition table ({label or 'none found'})"
        if not parts
        else f"partitions of types {', '.join(p.type for p in parts)}"
    )
    raise ImageError(
        f"{name or image} has no FAT boot partition ({what}).",
        "pass a Raspberry Pi OS image (.img or .img.xz from raspberrypi.com/software/operating-systems).",
    )


# --------------------------------------------------------------------------- FAT via mtools


class Fat:
    """The FAT file system of one partition of an image file, through mtools."""

    def __init__(self, image: Path, part: Partition):
        self.image = image
        self.part = part
        self.target = f"{image}@@{part.start}"
        self._env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
        _tool("mcopy", "mtools")

    def _run(self, tool: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [tool, "-i", self.target, *args], input=data, capture_output=True, env=self._env, check=False
        )

    def _fail(self, what: str, r: subprocess.CompletedProcess) -> ImageError:
        msg = (r.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        return ImageError(
            f"mtools could not {what} in the boot partition: {msg[-1] if msg else r.returncode}.",
            "check the image is a Raspberry Pi OS image and that the boot partition has room.",
        )

    def exists(self, path: str) -> bool:
        return self._run("mdir", "-b", f"::/{path}").returncode == 0

    def read(self, path: str) -> bytes | None:
        r = self._run("mcopy", "-n", f"::/{path}", "-")
        return r.stdout if r.returncode == 0 else None

    def write(self, path: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(prefix="edgepose-fat-") as tmp:
            tmp.write(data)
            tmp.flush()
            r = self._run("mcopy", "-o", "-n", tmp.name, f"::/{path}")
        if r.returncode != 0:
            raise self._fail(f"write {path}", r)

    def listdir(self, path: str = "") -> list[str]:
        r = self._run("mdir", "-b", f"::/{path}")
        if r.returncode != 0:
            return []
        names = [ln.strip().rstrip("/") for ln in r.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
        return sorted(n.rsplit("/", 1)[-1] for n in names)

    def free_bytes(self) -> int:
        """Free space of the file system (mdir's closing line; minfo does not count free clusters)."""
        d = self._run("mdir", "::/").stdout.decode("ascii", "replace")
        m = re.search(r"([\d ]+) bytes free", d)
        return int(m.group(1).replace(" ", "")) if m else 0

    def remove_tree(self, path: str) -> None:
        if self.exists(path):
            r = self._run("mdeltree", f"::/{path}")
            if r.returncode != 0:
                raise self._fail(f"remove the old {path}/", r)

    def put_tree(self, folder: Path, dest: str) -> None:
        """Copy ``folder`` as ``::/dest`` (replacing a previous one)."""
        self.remove_tree(dest)
        r = self._run("mmd", f"::/{dest}")
        if r.returncode != 0:
            raise self._fail(f"create {dest}/", r)
        entries = sorted(str(p) for p in folder.iterdir())
        r = self._run("mcopy", "-s", "-o", "-n", "-m", *entries, f"::/{dest}/")
        if r.returncode != 0:
            raise self._fail(f"copy the bundle into {dest}/", r)
