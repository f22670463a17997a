"""Base disk images in Raspberry Pi OS's layout, built from Debian's arm64 packages.

What a Pi reads from its card, as Raspberry Pi OS lays it out: an MBR disk with a FAT32
``bootfs`` (config.txt, cmdline.txt, kernel8.img, initramfs8, and on Trixie-based images the
cloud-init seed files) and an ext4 ``rootfs`` mounted by ``root=PARTUUID=<disk id>-02``.
No Raspberry Pi OS image can be downloaded here, so the OS comes from Debian's arm64 packages
(mmdebstrap under qemu-user), configured the way Pi OS configures the parts edgepose meets:

- ``trixie``: Debian 13 (Python 3.13) with cloud-init reading its NoCloud seed from the FAT
  labelled ``bootfs`` (datasource_list NoCloud, None), netplan, a default user ``pi`` in
  cloud-init's ``system_info`` as Pi OS has it; no user on the image.
- ``bookworm``: Debian 12 (Python 3.11), no cloud-init; a locked user ``pi`` (uid 1000) that
  Imager's firstrun.sh renames, and a stand-in ``/usr/lib/raspberrypi-sys-mods/imager_custom``
  with the real script's interface (set_hostname, enable_ssh, set_wlan, set_wlan_country);
  Pi OS's raspi-config, which the real one calls, is not in Debian.

Both get systemd-networkd with DHCP on any wired link (Pi OS's NetworkManager brings up a wired
link unasked). Nothing needs a mount or a loop device: ``mkfs.ext4 -d`` fills the root file
system from the folder, mtools fills the FAT, sfdisk writes the partition table. The root
folder and the finished image are cached in ``~/.cache/edgepose/boot`` (``EDGEPOSE_BOOT_CACHE``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("EDGEPOSE_BOOT_CACHE", Path.home() / ".cache" / "edgepose" / "boot"))
MIRROR = os.environ.get("EDGEPOSE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECTOR = 512
BOOT_START = 8192  # sectors: 4 MiB, as Pi OS
BOOT_MB = 512  # Pi OS's bootfs since Bookworm
ROOT_SLACK_MB = 2600  # the venv (~700 MB), the numba cache, logs and the outbox
COMMON = (
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "linux-image-arm64",
    "initramfs-tools",
    "python3",
    "python3-venv",
    "ca-certificates",
    "iproute2",
    "netbase",
    "sudo",
    "openssh-server",
    "e2fsprogs",
    "dosfstools",
    "procps",
    "rfkill",
)
#: The groups Pi OS gives its first user (video: cameras).
PI_GROUPS = ["adm", "dialout", "cdrom", "sudo", "audio", "video", "plugdev", "games", "users", "input", "netdev"]


@dataclass(frozen=True)
class Style:
    name: str
    suite: str
    python: str
    cloud_init: bool

    @property
    def packages(self) -> tuple[str, ...]:
        return COMMON + (("cloud-init", "netplan.io") if self.cloud_init else ())


STYLES = {
    "trixie": Style("trixie", "trixie", "3.13", cloud_init=True),
    "bookworm": Style("bookworm", "bookworm", "3.11", cloud_init=False),
}


class BuildError(Exception):
    """A step of the image build failed; the message names it and the fix."""


def log(msg: str) -> None:
    print(f"boot-image: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if r.returncode != 0:
        tail = "\n".join((r.stderr or r.stdout or "").strip().splitlines()[-15:])
        raise BuildError(f"`{' '.join(cmd[:6])} ...` exited {r.returncode}:\n{tail}")
    return r


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise BuildError(f"{name} is missing: apt-get install {package}")
    return found


def ensure_binfmt() -> None:
    """qemu-user for arm64 maintainer scripts (flag F: the interpreter is opened once, works in a chroot)."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
    if not (binfmt / "qemu-aarch64").exists():
        conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
        if not conf.exists():
            raise BuildError("qemu-aarch64 is not registered with binfmt_misc: apt-get install qemu-user-static")
        (binfmt / "register").write_text(conf.read_text().strip())


# --------------------------------------------------------------------------- the root folder


def build_root(style: Style) -> Path:
    """mmdebstrap the style's packages into a cached folder (minutes under qemu-user, once)."""
    root = CACHE / f"{style.name}-root"
    stamp = CACHE / f"{style.name}-root.json"
    want = {"suite": style.suite, "packages": list(style.packages), "mirror": MIRROR}
    if root.is_dir() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return root
    ensure_binfmt()
    tmp = CACHE / f"{style.name}-root.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"mmdebstrap {style.suite} arm64 ({len(style.packages)} packages; 4-25 min under qemu-user)")
    t0 = time.monotonic()
    run(
        [
            tool("mmdebstrap", "mmdebstrap"),
            "--arch=arm64",
            "--variant=apt",
            "--include=" + ",".join(style.packages),
            style.suite,
            str(tmp),
            MIRROR,
        ]
    )
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    stamp.write_text(json.dumps(want))
    log(f"root built in {time.monotonic() - t0:.0f} s")
    return root


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink():
        p.unlink()
    p.write_text(text)
    p.chmod(mode)


def _enable(root: Path, unit: str, target: str = "multi-user.target") -> None:
    wants = root / "etc/systemd/system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.is_symlink():
        src = next(
            p for p in (root / "usr/lib/systemd/system" / unit, root / "lib/systemd/system" / unit) if p.exists()
        )
        link.symlink_to("/" + str(src.relative_to(root)))


IMAGER_CUSTOM = r"""#!/bin/sh
# Stand-in for Raspberry Pi OS's /usr/lib/raspberrypi-sys-mods/imager_custom (raspberrypi-sys-mods),
# with the real script's commands and arguments. The real one calls raspi-config, which Debian lacks:
# the host name, Wi-Fi country and NetworkManager profile are written directly, as raspi-config would.
set -e
FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)
FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)
echo "imager_custom $*" >> /var/log/imager_custom.log
set_hostname() {
  [ "$#" -eq 1 ] || { echo "Usage: $0 set_hostname HOSTNAME"; exit 1; }
  old=$(cat /etc/hostname)
  echo "$1" > /etc/hostname
  sed -i "s/127.0.1.1.*$old/127.0.1.1\t$1/" /etc/hosts
}
enable_ssh() {
  enable=1
  for arg in "$@"; do
    case "$arg" in
      -k|--key-only) sed -i 's/^[#[:space:]]*PasswordAuthentication[[:space:]].*$/PasswordAuthentication no/' /etc/ssh/sshd_config ;;
      -p|--pass-auth) sed -i 's/^[#[:space:]]*PasswordAuthentication[[:space:]].*$/PasswordAuthentication yes/' /etc/ssh/sshd_config ;;
      -d|--disabled) enable=0 ;;
      *) install -o "$FIRSTUSER" -g "$FIRSTUSER" -m 700 -d "$FIRSTUSERHOME/.ssh"
         echo "$arg" >> "$FIRSTUSERHOME/.ssh/authorized_keys"
         chown "$FIRSTUSER:$FIRSTUSER" "$FIRSTUSERHOME/.ssh/authorized_keys"; chmod 600 "$FIRSTUSERHOME/.ssh/authorized_keys" ;;
    esac
  done
  [ "$enable" = 0 ] || systemctl -q enable ssh
}
set_wlan_country() {
  [ "$#" -eq 1 ] || { echo "Usage: $0 set_wlan_country COUNTRY"; exit 1; }
  echo "$1" > /etc/wlan-country
}
set_wlan() {
  HIDDEN=false
  for arg in "$@"; do
    case "$arg" in
      -h|--hidden) HIDDEN=true ;;
      -p|--plain) ;;
      *) if [ -z "${SSID+set}" ]; then SSID=$arg; elif [ -z "${PASS+set}" ]; then PASS=$arg;
         elif [ -z "${COUNTRY+set}" ]; then COUNTRY=$arg; else echo "Usage: $0 set_wlan [-h] [-p] SSID [PASS [COUNTRY]]"; exit 1; fi ;;
    esac
  done
  [ -n "${SSID+set}" ] || { echo "Usage: $0 set_wlan [-h] [-p] SSID [PASS [COUNTRY]]"; exit 1; }
  [ -z "$COUNTRY" ] || set_wlan_country "$COUNTRY"
  f=/etc/NetworkManager/system-connections/preconfigured.nmconnection
  mkdir -p "$(dirname "$f")"
  printf '[connection]\nid=preconfigured\ntype=wifi\n[wifi]\nmode=infrastructure\nssid=%s\nhidden=%s\n[ipv4]\nmethod=auto\n' "$SSID" "$HIDDEN" > "$f"
  [ -z "$PASS" ] || printf '[wifi-security]\nkey-mgmt=wpa-psk\npsk=%s\n' "$PASS" >> "$f"
  chmod 600 "$f"
}
[ "$#" -gt 0 ] || { echo "No command specified"; exit 1; }
cmd=$1; shift
case "$cmd" in
  set_hostname|enable_ssh|set_wlan|set_wlan_country) "$cmd" "$@" ;;
  *) echo "Unsupported command: $cmd"; exit 1 ;;
esac
"""

CLOUD_CFG = """\
# As Raspberry Pi OS configures cloud-init: the NoCloud seed is the FAT partition labelled
# bootfs (user-data, meta-data, network-config beside config.txt), nothing else is probed.
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    fs_label: bootfs
system_info:
  default_user:
    name: pi
    lock_passwd: true
    gecos: pi
    groups: [{groups}]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
"""


def customise_root(root: Path, style: Style, disk_id: str) -> None:
    """What Pi OS has on its root file system that the packages alone do not give (idempotent)."""
    _write(root, "etc/hostname", "raspberrypi\n")
    _write(
        root, "etc/hosts", "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\traspberrypi\n"
    )
    _write(
        root,
        "etc/fstab",
        f"proc /proc proc defaults 0 0\nPARTUUID={disk_id}-01 /boot/firmware vfat defaults 0 2\n"
        f"PARTUUID={disk_id}-02 / ext4 defaults,noatime 0 1\n",
    )
    (root / "boot/firmware").mkdir(parents=True, exist_ok=True)
    # Wired links get DHCP, as NetworkManager gives them on Pi OS.
    _write(root, "etc/systemd/network/20-wired.network", "[Match]\nType=ether\n\n[Network]\nDHCP=yes\n")
    _enable(root, "systemd-networkd.service")
    _enable(root, "systemd-networkd-wait-online.service", "network-online.target")
    # A fresh machine id on first boot, as on a flashed card.
    _write(root, "etc/machine-id", "")
    # Timers that would only compete with first boot under emulation.
    for t in ("apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer", "fstrim.timer"):
        (root / "etc/systemd/system/timers.target.wants" / t).unlink(missing_ok=True)
    if style.cloud_init:
        _write(root, "etc/cloud/cloud.cfg.d/99_raspberry-pi-os.cfg", CLOUD_CFG.format(groups=", ".join(PI_GROUPS)))
    else:
        _write(root, "usr/lib/raspberrypi-sys-mods/imager_custom", IMAGER_CUSTOM, 0o755)
        passwd = (root / "etc/passwd").read_text()
        if "\npi:" not in "\n" + passwd:
            have = {ln.split(":", 1)[0] for ln in (root / "etc/group").read_text().splitlines()}
            run(
                [
                    "chroot",
                    str(root),
                    "useradd",
                    "--uid",
                    "1000",
                    "--create-home",
                    "--shell",
                    "/bin/bash",
                    "--groups",
                    ",".join(g for g in PI_GROUPS if g in have),
                    "pi",
                ]
            )
            run(["chroot", str(root), "passwd", "--lock", "pi"])


# --------------------------------------------------------------------------- the disk


def pi_config_txt() -> str:
    return (
        "# As Raspberry Pi OS ships it (the lines a Pi 4 reads).\n"
        "dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\n"
        "dtoverlay=vc4-kms-v3d\nmax_framebuffers=2\ndisable_fw_kms_setup=1\narm_64bit=1\n"
        "disable_overscan=1\narm_boost=1\n\n[cm4]\notg_mode=1\n\n[all]\n"
    )


def pi_cmdline(disk_id: str) -> str:
    return f"console=serial0,115200 console=tty1 root=PARTUUID={disk_id}-02 rootfstype=ext4 fsck.repair=yes rootwait\n"


CLOUD_SEED = {
    # Trixie-based Pi OS ships these on bootfs for the user to edit; Imager overwrites them.
    "user-data": "#cloud-config\n# Edit this file, or let Raspberry Pi Imager write it.\n",
    "meta-data": "instance-id: rpios-image\n",
    "network-config": "# Network configuration (netplan v2). Wired Ethernet works without it.\nnetwork:\n  version: 2\n",
}


def _kernel_files(root: Path) -> tuple[Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise BuildError(
            f"{root}/boot has no vmlinuz-*/initrd.img-*: the root build is incomplete; delete {root} and run again"
        )
    return kernels[-1], initrds[-1]


def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def base_image(style_name: str) -> Path:
    """The cached base image of a style, built (or rebuilt after this file changed) on demand."""
    style = STYLES[style_name]
    out = CACHE / f"{style.name}-base.img"
    stamp = CACHE / f"{style.name}-base.json"
    root = build_root(style)
    want = {"root": json.loads((CACHE / f"{style.name}-root.json").read_text()), "builder": _source_hash()}
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return out
    t0 = time.monotonic()
    disk_id = hashlib.sha256(style.name.encode()).hexdigest()[:8]
    customise_root(root, style, disk_id)
    kernel, initrd = _kernel_files(root)
    work = CACHE / f"{style.name}-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        fat = work / "boot.fat"
        run([tool("mkfs.vfat", "dosfstools"), "-F", "32", "-n", "bootfs", "-C", str(fat), str(BOOT_MB * 1024)])
        files = {"config.txt": pi_config_txt(), "cmdline.txt": pi_cmdline(disk_id)}
        if style.cloud_init:
            files.update(CLOUD_SEED)
        for name, text in files.items():
            (work / name).write_text(text)
            run([tool("mcopy", "mtools"), "-i", str(fat), str(work / name), f"::{name}"])
        # Pi OS's bootfs holds the kernel and initramfs the firmware loads (kernel8.img, initramfs8).
        run([tool("mcopy", "mtools"), "-i", str(fat), str(kernel), "::kernel8.img"])
        run([tool("mcopy", "mtools"), "-i", str(fat), str(initrd), "::initramfs8"])
        used = int(run(["du", "-sm", "--exclude=./proc", "--exclude=./sys", str(root)]).stdout.split()[0])
        root_mb = used + ROOT_SLACK_MB
        ext4 = work / "root.ext4"
        run(
            [
                tool("mkfs.ext4", "e2fsprogs"),
                "-q",
                "-L",
                "rootfs",
                "-d",
                str(root),
                "-E",
                "root_owner=0:0",
                str(ext4),
                f"{root_mb}M",
            ]
        )
        img = work / "disk.img"
        root_start = BOOT_START + BOOT_MB * 2048
        with open(img, "wb") as f:
            f.truncate((root_start + root_mb * 2048) * SECTOR)
        table = (
            f"label: dos\nlabel-id: 0x{disk_id}\nunit: sectors\n\n"
            f"start={BOOT_START}, size={BOOT_MB * 2048}, type=c\nstart={root_start}, size={root_mb * 2048}, type=83\n"
        )
        run([tool("sfdisk", "fdisk"), "--no-reread", "--no-tell-kernel", str(img)], input=table)
        for part, start in ((fat, BOOT_START), (ext4, root_start)):
            run(
                [
                    "dd",
                    f"if={part}",
                    f"of={img}",
                    "bs=4M",
                    f"seek={start * SECTOR}",
                    "oflag=seek_bytes",
                    "conv=notrunc,sparse",
                    "status=none",
                ]
            )
        img.rename(out)
        stamp.write_text(json.dumps(want))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"{out.name}: {out.stat().st_size / 2**30:.1f} GiB (sparse), made in {time.monotonic() - t0:.0f} s")
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("style", choices=sorted(STYLES))
    print(base_image(ap.parse_args().style))
