"""Provisioning fixtures: one real bundle per session (the only test step that downloads) and Pi OS-like images."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.procs import edgepose

DEVICE = REPO / "firmware_configs" / "device.toml"
#: Boot partition: 4 MiB in, 300 MiB of FAT32 (Raspberry Pi OS has 512 MiB), then a 16 MiB Linux (ext4) partition entry.
BOOT_START = 8192 * 512
BOOT_SECTORS = 614400
ROOT_SECTORS = 32768
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}

CONFIG_TXT = """# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
# This line should be removed if the legacy DWC2 controller is required
# (e.g. for USB device mode) or if USB support is not required.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
"""
CMDLINE_TXT = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet\n"
)
# What a current (cloud-init) Raspberry Pi OS image carries on its boot partition before Imager touches it.
STOCK_USER_DATA = """#cloud-config
# This is the user-data configuration file for cloud-init. By default this sets
# up an initial user called "ubuntu" with password "ubuntu", which must be
# changed at first login. However, many additional actions can be initiated on
# first boot from this file.

# Keep the apt cache warm on first boot
package_update: false
timezone: Europe/London
runcmd:
  - [ sh, -c, "echo stock runcmd ran > /var/tmp/stock" ]
"""
STOCK_NETWORK_CONFIG = """# This file contains a netplan-compatible configuration which cloud-init will
# apply on first-boot.
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      optional: true
"""
STOCK_META_DATA = "instance-id: rpios-image\n"


def mtools(*args: str, data: bytes | None = None) -> bytes:
    r = subprocess.run(list(args), input=data, capture_output=True, env=MTOOLS_ENV, check=True)
    return r.stdout


def fat_read(image: Path, path: str) -> bytes:
    return mtools("mcopy", "-n", "-i", f"{image}@@{BOOT_START}", f"::/{path}", "-")


def make_pi_image(path: Path, *, cloud_init: bool, fat: bool = True) -> Path:
    """An MBR image shaped like Raspberry Pi OS: FAT32 'bootfs' (config.txt, cmdline.txt[, cloud-init files]) + a Linux partition."""
    with open(path, "wb") as f:
        f.truncate(BOOT_START + (BOOT_SECTORS + ROOT_SECTORS) * 512 + (1 << 20))
    sfdisk = shutil.which("sfdisk") or "/usr/sbin/sfdisk"
    table = (
        f"label: dos\nstart=8192, size={BOOT_SECTORS}, type={'c' if fat else '83'}\n"
        f"start={8192 + BOOT_SECTORS}, size={ROOT_SECTORS}, type=83\n"
    )
    subprocess.run([sfdisk, "-q", str(path)], input=table, text=True, check=True, capture_output=True)
    if not fat:
        return path
    target = f"{path}@@{BOOT_START}"
    mtools("mformat", "-i", target, "-F", "-T", str(BOOT_SECTORS), "-h", "64", "-s", "32", "-v", "bootfs", "::")
    files = {"config.txt": CONFIG_TXT, "cmdline.txt": CMDLINE_TXT, "issue.txt": "Raspberry Pi reference 2025-10-01\n"}
    if cloud_init:
        files |= {"user-data": STOCK_USER_DATA, "network-config": STOCK_NETWORK_CONFIG, "meta-data": STOCK_META_DATA}
    src = path.parent / f".{path.name}.files"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    mtools("mcopy", "-i", target, *[str(src / n) for n in files], "::/")
    shutil.rmtree(src)
    return path


@pytest.fixture(scope="session")
def pi4_bundle(tmp_path_factory) -> Path:
    """The one bundle that downloads (into the wheel cache); everything else reuses it or the warm cache."""
    from edgepose.provision.bundle import make_bundle

    out = tmp_path_factory.mktemp("bundle") / "pi4"
    make_bundle("pi4", DEVICE, out, progress=False)
    return out


@pytest.fixture(scope="session")
def pi4_bundle_313(tmp_path_factory) -> Path:
    """The bundle for Raspberry Pi OS Trixie (Python 3.13): its own wheels (cp313, numpy 2)."""
    from edgepose.provision.bundle import make_bundle

    out = tmp_path_factory.mktemp("bundle") / "pi4-313"
    make_bundle("pi4", DEVICE, out, python="3.13", progress=False)
    return out


def flash_cli(
    *args: str | bytes,
    env: dict[str, str | bytes | None] | None = None,
    cwd: Path | None = None,
    text: bool = True,
    no_progress: bool = True,
) -> subprocess.CompletedProcess:
    """``edgepose flash ARGS [--no-progress]``; the Wi-Fi and user passwords come from ``env`` alone, never the caller's
    environment (``text=False``: bytes in and out, for argv and env that are not UTF-8 on purpose)."""
    return edgepose(
        "flash",
        *args,
        *(["--no-progress"] if no_progress else []),
        env={"EDGEPOSE_WIFI_PASSWORD": None, "EDGEPOSE_USER_PASSWORD": None, **(env or {})},
        cwd=cwd,
        timeout=600,
        text=text,
    )
