"""Write an image to a card and prove it by reading it back (sha256 of both)."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from ..errors import EdgeposeError
from ..progress import bar as progress_bar

CHUNK = 4 << 20


class WriteError(EdgeposeError):
    """The card could not be written, or what was read back differs."""


def write_image(image: Path, device: str, *, progress: bool | None = None) -> str:
    """Copy ``image`` to the start of ``device``, flush, read it back; returns the verified sha256."""
    size = image.stat().st_size
    want = hashlib.sha256()
    try:
        # O_EXCL on a block device fails with EBUSY while anything has it mounted: a last guard.
        fd = os.open(device, os.O_WRONLY | os.O_EXCL | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        raise WriteError(
            f"no permission to write {device}.", "run the command with sudo (or add yourself to the disk group)."
        ) from None
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise WriteError(
                f"{device} is busy (mounted or in use).", f"unmount its partitions (sudo umount {device}*)."
            ) from None
        raise WriteError(f"cannot open {device}: {e.strerror}.", "check the device name with lsblk.") from None
    try:
        with open(image, "rb") as src, progress_bar(size, f"write {device}", progress=progress) as bar:
            while True:
                buf = src.read(CHUNK)
                if not buf:
                    break
                want.update(buf)
                view = memoryview(buf)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                bar.update(len(buf))
        os.fsync(fd)
        # Drop the cached pages so the read-back comes from the card, not from memory.
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as e:
        raise WriteError(
            f"writing {device} failed: {e.strerror}.", "reinsert the card (or try another) and run again."
        ) from None
    finally:
        os.close(fd)
    got = hashlib.sha256()
    with open(device, "rb") as dev, progress_bar(size, "verify", progress=progress) as bar:
        left = size
        while left:
            buf = dev.read(min(CHUNK, left))
            if not buf:
                break
            got.update(buf)
            left -= len(buf)
            bar.update(len(buf))
    if left or got.hexdigest() != want.hexdigest():
        raise WriteError(
            f"read-back of {device} does not match the image (sha256 {got.hexdigest()[:16]}... vs {want.hexdigest()[:16]}...).",
            "the card is failing or counterfeit: use another card.",
        )
    return want.hexdigest()
