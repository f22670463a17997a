"""Boot to stream (tests/boot/boot_to_stream.py) and the parts of it that need no emulator.

The boot itself needs root, mmdebstrap, qemu-user-static and qemu-system-arm and takes 20-60
minutes per image style under TCG, so it carries the ``boot`` marker, which the default run
deselects. Run it with:

    sudo .venv/bin/python -m pytest -q -m boot tests/boot
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.boot.guest import console_cmdline

SCRIPT = Path(__file__).with_name("boot_to_stream.py")
REPO = Path(__file__).resolve().parents[2]


def test_console_maps_the_pis_serial_to_the_virt_boards_and_makes_it_the_console():
    pi = "console=serial0,115200 console=tty1 root=PARTUUID=0a1b2c3d-02 rootfstype=ext4 fsck.repair=yes rootwait ds=nocloud;i=x"
    out = console_cmdline(pi).split()
    assert out[-1] == "console=ttyAMA0,115200"  # the last console= is /dev/console: systemd and cloud-init print there
    assert out.count("console=tty1") == 1 and "console=serial0,115200" not in out
    assert [w for w in out if not w.startswith("console=")] == [w for w in pi.split() if not w.startswith("console=")]
    assert console_cmdline("root=/dev/vda2 rootwait").split()[-1] == "console=ttyAMA0,115200"


def _tools_missing() -> list[str]:
    need = ["mmdebstrap", "qemu-system-aarch64", "mcopy", "mkfs.vfat", "mkfs.ext4", "sfdisk", "socat", "mosquitto"]
    return [t for t in need if not (shutil.which(t) or os.path.exists(f"/usr/sbin/{t}"))]


@pytest.mark.boot
@pytest.mark.integration  # also out of `-m "not integration"`, which replaces the default `-m`
@pytest.mark.parametrize("style", ["trixie", "bookworm"])
def test_a_flashed_card_boots_installs_offline_and_streams(style, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the boot test builds its base image as root (mmdebstrap, mkfs.ext4 -d)")
    missing = _tools_missing()
    if missing:
        pytest.fail(
            f"missing for the boot test: {', '.join(missing)} (see firmware_configs/README.md, 'Boot to stream')"
        )
    summary = tmp_path / "summary.json"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--style", style, "--summary", str(summary)],
        cwd=REPO,
        timeout=3 * 3600,
        check=False,
    )
    assert r.returncode == 0
    figures = json.loads(summary.read_text())
    first = figures["first boot"]
    assert first["power off"]["clean"] and "offline" in first["power off"]["announced"]
    assert first["page"] == {"status": 200, "without token": 401}
    assert figures["max px vs host"] <= 4.0
    marks = first["marks"]
    assert (
        marks["kernel"]
        < marks["install start"]
        < marks["compile start"]
        < marks["provisioned"]
        < first["first keypoints"]
    )
    if style == "trixie":
        assert marks["cloud-init start"] < marks["install start"] and first["boots"] == 1
        assert figures["state kept"] and figures["second boot"]["marks"]["install start"] > 0
    else:
        assert "firstrun reboot" in marks and first["boots"] == 2  # firstrun.sh, its reboot, then the first-boot unit
