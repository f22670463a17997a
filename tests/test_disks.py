"""`edgepose flash --write`: which disk may be overwritten, decided on recorded `lsblk --json -b` outputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from edgepose.provision.disks import DiskRefused, check_target, parse_lsblk, read_lsblk
from edgepose.provision.write import WriteError, write_image
from tests.conftest_provision import DEVICE, flash_cli

DATA = Path(__file__).resolve().parent / "data" / "lsblk"


def disks(name: str):
    return parse_lsblk((DATA / name).read_text())


@pytest.mark.parametrize(
    "recording, device, reason",
    [
        # laptop: the NVMe holds / and /boot/efi; the SD slot is fine once the desktop's automount is undone
        ("laptop-nvme-sd.json", "/dev/nvme0n1", "holds /, /boot/efi, [SWAP] of the running system"),
        ("laptop-nvme-sd.json", "/dev/mmcblk0p1", "is a part, not a whole disk"),
        (
            "laptop-nvme-sd-automounted.json",
            "/dev/mmcblk0",
            "has mounted partitions (/dev/mmcblk0p1 on /media/alice/bootfs",
        ),
        # desktop with a USB card reader
        ("usb-card-reader.json", "/dev/sda", "holds /, /boot/efi, /home of the running system"),
        ("usb-card-reader.json", "/dev/sdc", "has no medium"),
        ("usb-card-reader.json", "/dev/sdd", "has mounted partitions"),
        ("usb-card-reader.json", "/dev/sde", "is read-only"),
        ("usb-card-reader.json", "/dev/sdz", "is not a block device on this machine"),
        # a Pi flashing a second card: never its own SD card
        ("pi-sd-second-card.json", "/dev/mmcblk0", "holds /, /boot/firmware of the running system"),
        ("pi-sd-second-card.json", "/dev/zram0", "holds [SWAP]"),
    ],
)
def test_refused(recording, device, reason):
    with pytest.raises(DiskRefused) as e:
        check_target(disks(recording), device)
    assert reason in e.value.problem
    assert e.value.fix  # every refusal says what to do


@pytest.mark.parametrize(
    "recording, device, size",
    [
        ("laptop-nvme-sd.json", "/dev/mmcblk0", 31914983424),
        ("usb-card-reader.json", "/dev/sdb", 63864569856),
        ("pi-sd-second-card.json", "/dev/sda", 31914983424),
        ("pi-sd-second-card.json", "sda", 31914983424),
    ],
)
def test_allowed(recording, device, size):
    d = check_target(disks(recording), device, image_size=2_700_000_000)
    assert d.size == size and d.type == "disk"


def test_hints_name_the_cards_and_unmount_command():
    with pytest.raises(DiskRefused) as e:
        check_target(disks("pi-sd-second-card.json"), "/dev/mmcblk0")
    assert "/dev/sda (SD Card Reader), 31.9 GB" in e.value.fix and "mmcblk0" not in e.value.fix
    with pytest.raises(DiskRefused) as e:
        check_target(disks("laptop-nvme-sd-automounted.json"), "/dev/mmcblk0")
    assert e.value.fix == "unmount them first: sudo umount /dev/mmcblk0p1 /dev/mmcblk0p2"


def test_large_disk_needs_force_and_image_must_fit(tmp_path):
    data = json.loads((DATA / "usb-card-reader.json").read_text())
    big = next(d for d in data["blockdevices"] if d["name"] == "sdb")
    big["size"] = 512_110_190_592  # a 512 GB "card"
    with pytest.raises(DiskRefused, match="larger than 256 GB") as e:
        check_target(parse_lsblk(data), "/dev/sdb")
    assert "--force" in e.value.fix
    assert check_target(parse_lsblk(data), "/dev/sdb", force=True).size == 512_110_190_592
    with pytest.raises(DiskRefused, match="smaller than the image"):
        check_target(disks("pi-sd-second-card.json"), "/dev/sda", image_size=64 * 10**9)


def test_old_lsblk_format():
    """lsblk < 2.37: one `mountpoint` string and "0"/"1" flags."""
    old = {
        "blockdevices": [
            {
                "name": "sdb",
                "size": "31914983424",
                "type": "disk",
                "rm": "1",
                "hotplug": "1",
                "ro": "0",
                "tran": "usb",
                "model": "Card Reader",
                "mountpoint": None,
                "children": [
                    {
                        "name": "sdb1",
                        "size": "268435456",
                        "type": "part",
                        "rm": "1",
                        "ro": "0",
                        "mountpoint": "/media/bootfs",
                    }
                ],
            },
            {
                "name": "sda",
                "size": "256060514304",
                "type": "disk",
                "rm": "0",
                "hotplug": "0",
                "ro": "0",
                "tran": "sata",
                "model": "SSD",
                "mountpoint": None,
                "children": [{"name": "sda1", "size": "256059465728", "type": "part", "mountpoint": "/"}],
            },
        ]
    }
    parsed = parse_lsblk(old)
    assert parsed[0].path == "/dev/sdb" and parsed[0].removable and parsed[0].size == 31914983424
    with pytest.raises(DiskRefused, match="mounted partitions"):
        check_target(parsed, "/dev/sdb")
    with pytest.raises(DiskRefused, match="holds /"):
        check_target(parsed, "/dev/sda")


def test_this_machines_lsblk_parses():
    found = read_lsblk()
    assert all(d.path.startswith("/dev/") for d in found)
    root = [d for d in found if "/" in d.all_mounts()]
    for d in root:  # whatever holds / here is refused
        with pytest.raises(DiskRefused):
            check_target(found, d.path)


def test_write_image_verifies_by_reading_back(tmp_path):
    image = tmp_path / "img"
    image.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    card = tmp_path / "card"
    card.write_bytes(b"\xff" * (8 * 1024 * 1024))  # a card larger than the image
    sha = write_image(image, str(card), progress=False)
    assert sha == hashlib.sha256(image.read_bytes()).hexdigest()
    assert card.read_bytes()[: image.stat().st_size] == image.read_bytes()
    with pytest.raises(WriteError, match="cannot open"):
        write_image(image, str(tmp_path / "nodir" / "card"), progress=False)


@pytest.mark.integration
def test_flash_write_refuses_before_any_work(tmp_path):
    """The CLI checks the disk first: a refused disk leaves no --out and no temp file."""
    out = tmp_path / "out.img"
    r = flash_cli(
        "--image",
        str(tmp_path / "missing.img"),
        "--out",
        str(out),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--write",
        "/dev/mmcblk0",
        env={"EDGEPOSE_LSBLK_JSON": str(DATA / "pi-sd-second-card.json")},
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepose flash: error: /dev/mmcblk0") and "holds /" in lines[0]
    assert list(tmp_path.iterdir()) == []
