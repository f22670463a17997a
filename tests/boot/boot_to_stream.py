#!/usr/bin/env python3
"""Boot to stream: flash a card image, boot it in a full-system emulator, get keypoints from it.

Run as root on an x86 Debian host (mmdebstrap, qemu-user-static, qemu-system-arm, mtools, fdisk,
dosfstools, e2fsprogs, socat, mosquitto; ``.ci/run``'s install step names them):

    sudo .venv/bin/python tests/boot/boot_to_stream.py --style trixie      # cloud-init (current Pi OS)
    sudo .venv/bin/python tests/boot/boot_to_stream.py --style bookworm    # Imager's firstrun.sh
    sudo .venv/bin/python -m pytest -m boot tests/boot                     # both, as the test

For one image style it
1. builds (or reuses) the base image (tests/boot/images.py: Raspberry Pi OS's card layout from
   Debian's arm64 packages), cached in ~/.cache/edgepose/boot;
2. runs ``edgepose flash`` on it as a user would: board profile pi4, a device config whose broker is
   the site's (10.0.2.100 from inside) and whose page listens beyond loopback with a token from
   ``--secrets``, an SSH key and Wi-Fi; the card then gets one test picture as its "camera";
3. boots it with qemu-system-aarch64 (-M virt, TCG, no network but the forwards) with the kernel,
   initramfs and command line read from the flashed boot partition, again after every reboot;
4. waits for kernel, systemd, cloud-init (or firstrun.sh and its reboot), the offline install, the
   compile, the service, and the first keypoints at a Mosquitto on the host; asks the device page
   for its status with the token (and is refused without it); compares the keypoints with the host's
   ``edgepose run`` of the same picture;
5. presses the power button and expects the service's ``offline`` before the guest is off;
6. with ``--reflash`` (default for trixie): flashes the booted card again with a changed config
   (another topic prefix) and boots it: first boot must run again (new instance id) and keep the
   device's state (/var/lib/edgepose), and the keypoints must come on the new topics.

Prints how long each step took since power-on; ``--summary FILE`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.boot import images  # noqa: E402
from tests.boot.guest import GUEST_BROKER, GUEST_HTTP, Guest, GuestError, rootfs  # noqa: E402
from tests.mosquitto import Mosquitto, Subscriber, free_port  # noqa: E402

SHARED = REPO.parent / "shared"
PICTURE = SHARED / "images" / "test_couple.jpg"
TOLERANCE_PX = 4.0
EDGEPOSE_CLI = (sys.executable, "-m", "edgepose.cli")
# A syntactically valid key: sshd is not logged into, the flash only has to carry it.
SSH_KEY = (
    "ssh-ed25519 "
    + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
    + " boot-test"
)
WIFI = ("boot test net", "correct horse battery")


def log(msg: str) -> None:
    print(f"boot: {msg}", file=sys.stderr, flush=True)


def device_toml(device_id: str, prefix: str) -> str:
    return f"""device_id = "{device_id}"

[source]
uri = "/boot/firmware/edgepose-test/test_couple.jpg"
loop = true

[mqtt]
host = "{GUEST_BROKER}"
port = 1883
topic_prefix = "{prefix}/{{device_id}}"
poses_rate = 2.0

[http]
enabled = true
host = "0.0.0.0"
port = {GUEST_HTTP}
token_env = "EDGEPOSE_HTTP_TOKEN"
"""


def flash(image: Path, out: Path, work: Path, device_id: str, prefix: str, token: str) -> float:
    """``edgepose flash`` as a user runs it; then the card's one test picture. Returns seconds."""
    (work / "device.toml").write_text(device_toml(device_id, prefix))
    (work / "secrets.env").write_text(f"EDGEPOSE_HTTP_TOKEN={token}\n")
    (work / "key.pub").write_text(SSH_KEY + "\n")
    t0 = time.monotonic()
    env = {**os.environ, "EDGEPOSE_WIFI_PASSWORD": WIFI[1], "EDGEPOSE_MODEL_MIRROR": str(SHARED / "models")}
    r = subprocess.run(
        [
            *EDGEPOSE_CLI,
            "flash",
            "--image",
            str(image),
            "--out",
            str(out),
            "--profile",
            "pi4",
            "--config",
            str(work / "device.toml"),
            "--secrets",
            str(work / "secrets.env"),
            "--ssh-key",
            str(work / "key.pub"),
            "--wifi-ssid",
            WIFI[0],
            "--wifi-country",
            "GB",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=REPO,
    )
    if r.returncode != 0:
        raise GuestError(f"edgepose flash failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    log(r.stdout.strip())
    from edgepose.provision.image import Fat, find_boot_partition

    fat = Fat(out, find_boot_partition(out))
    fat.put_tree(_picture_folder(work), "edgepose-test")
    return time.monotonic() - t0


def _picture_folder(work: Path) -> Path:
    d = work / "picture"
    d.mkdir(exist_ok=True)
    shutil.copy(PICTURE, d / PICTURE.name)
    return d


def http_get(port: int, path: str, token: str | None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def host_poses(config: Path) -> list[list[list[float]]]:
    """The host's ``edgepose run`` of the same picture, same profile and config (the reference)."""
    with_board = {**os.environ, "EDGEPOSE_BOARD": "pi4", "EDGEPOSE_MODEL_MIRROR": str(SHARED / "models")}
    r = subprocess.run(
        [
            *EDGEPOSE_CLI,
            "run",
            "--config",
            str(config),
            "--source",
            str(PICTURE),
            "--max-frames",
            "1",
            "--jsonl",
            "-",
            "--quiet",
            "--no-track",
        ],
        capture_output=True,
        text=True,
        env=with_board,
        check=False,
        cwd=REPO,
    )
    if r.returncode != 0:
        raise GuestError(f"host edgepose run failed: {r.stderr}")
    return people_xy(r.stdout.strip().splitlines()[-1].encode())


def people_xy(payload: bytes) -> list[list[list[float]]]:
    """(x, y) of every keypoint of every person of a poses payload or JSONL line (named keypoints, in order)."""
    from edgepose.mqtt.payloads import decode_poses

    frame = decode_poses(payload)
    return [[kp[:2] for kp in person["keypoints"].values()] for person in frame["people"]]


def max_distance(a: list, b: list) -> float:
    """Largest keypoint distance between two frames' people, paired by nearest centre."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    if len(a) != len(b):
        return float("inf")
    A, B = np.asarray(a, float), np.asarray(b, float)
    cost = np.linalg.norm(A.mean(1)[:, None] - B.mean(1)[None], axis=-1)
    r, c = linear_sum_assignment(cost)
    return float(np.linalg.norm(A[r] - B[c], axis=-1).max())


def wait_for(pred, timeout: float, guest: Guest, what: str) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return time.monotonic() - guest.t0
        if not guest.running:
            raise GuestError(f"the guest stopped before {what}; last console lines:\n" + "\n".join(guest.lines[-25:]))
        time.sleep(1)
    raise GuestError(f"no {what} within {timeout:.0f} s; last console lines:\n" + "\n".join(guest.lines[-25:]))


def one_boot(
    card: Path, work: Path, device_id: str, prefix: str, token: str, timeout: float, expect_install: bool
) -> dict:
    """Boot ``card`` until keypoints arrive and the page answers; power it off. Returns the figures."""
    broker_port, http_port = free_port(), free_port()
    with Mosquitto(port=broker_port, workdir=work / "broker") as broker:
        sub = Subscriber(broker.port, "#")
        guest = Guest(image=card, work=work / "guest", forwards={http_port: GUEST_HTTP}, broker_port=broker.port)
        figures: dict = {"style": card.name}
        try:
            guest.start()
            poses_topic = f"{prefix}/{device_id}/poses"
            t_keys = wait_for(lambda: bool(sub.on(poses_topic)), timeout, guest, f"keypoints on {poses_topic}")
            figures["first keypoints"] = t_keys
            log(f"first keypoints on {poses_topic} after {t_keys:.0f} s")
            status, body = http_get(http_port, "/api/status", token)
            refused, _ = http_get(http_port, "/api/status", None)
            figures["page"] = {"status": status, "without token": refused}
            if status != 200 or refused != 401:
                raise GuestError(f"device page: /api/status gave {status} with the token and {refused} without")
            figures["page status"] = json.loads(body)
            figures["keypoints"] = people_xy(sub.on(poses_topic)[-1])
            if expect_install and "install start" not in guest.marks:
                raise GuestError("keypoints came, but first boot's install never ran on this boot")
            status_topic = f"{prefix}/{device_id}/status"
            n_status = len(sub.on(status_topic))
            t_off = time.monotonic()
            clean = guest.poweroff(timeout=600)
            states = [json.loads(m).get("state") for m in sub.on(status_topic)[n_status:]]
            figures["power off"] = {"clean": clean, "seconds": time.monotonic() - t_off, "announced": states}
            if not clean or "offline" not in states:
                raise GuestError(f"power off: clean={clean}, status messages after the button: {states}")
        finally:
            guest.kill()
            sub.close()
        figures["marks"] = dict(guest.marks)
        figures["boots"] = guest.boots
        figures["cmdline"] = guest.cmdline
        figures["device"] = check_card(card, device_id)
        return figures


def check_card(card: Path, device_id: str) -> dict:
    """What the booted card holds afterwards, read from its partitions (the guest is off)."""
    import hashlib

    from edgepose.provision.image import Fat, find_boot_partition

    found: dict = {"hostname": rootfs(card, "cat /etc/hostname").strip()}
    if found["hostname"] != device_id:
        raise GuestError(f"the device's host name is {found['hostname']!r}, flash set {device_id!r}")
    env = rootfs(card, "cat /etc/edgepose/edgepose.env")
    if "EDGEPOSE_HTTP_TOKEN=" not in env:
        raise GuestError("/etc/edgepose/edgepose.env lacks the token flash --secrets carried")
    if Fat(card, find_boot_partition(card)).exists("edgepose-secrets.env"):
        raise GuestError("the secrets file is still on the boot partition after first boot")
    found["marker"] = rootfs(card, "cat /var/lib/edgepose/.provisioned").split()
    # The outbox at its default place (XDG_STATE_HOME=/var/lib/edgepose in the unit).
    stat = rootfs(card, f"stat /var/lib/edgepose/edgepose/outbox-{device_id}.sqlite")
    if "Inode:" not in stat:
        raise GuestError(f"no event outbox on the card: {stat.strip()[:200]}")
    found["outbox inode"] = stat.split("Inode:")[1].split()[0]
    imager = rootfs(card, "cat /var/log/imager_custom.log")
    if imager.strip():  # bookworm: firstrun.sh called imager_custom as Imager's script does
        psk = hashlib.pbkdf2_hmac("sha1", WIFI[1].encode(), WIFI[0].encode(), 4096, 32).hex()
        want = [f"imager_custom set_hostname {device_id}", f"imager_custom set_wlan {WIFI[0]} {psk} GB"]
        missing = [w for w in want if w not in imager]
        if missing or "imager_custom enable_ssh -k ssh-ed25519 " not in imager:
            raise GuestError(f"imager_custom was not called as expected; its log:\n{imager}")
        found["imager_custom"] = imager.strip().splitlines()
    return found


def prove(style: str, *, reflash: bool, timeout: float, keep: bool) -> dict:
    base = images.base_image(style)
    work = images.CACHE / f"run-{style}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    device_id, token = f"boot-{style}", secrets.token_urlsafe(24)
    card = work / f"{style}-flashed.img"
    summary: dict = {"style": style, "flash seconds": flash(base, card, work, device_id, "edgepose", token)}
    first = one_boot(card, work / "boot1", device_id, "edgepose", token, timeout, expect_install=True)
    summary["first boot"] = first
    reference = host_poses(work / "device.toml")
    summary["max px vs host"] = max_distance(first["keypoints"], reference)
    if summary["max px vs host"] > TOLERANCE_PX:
        raise GuestError(
            f"the guest's keypoints are {summary['max px vs host']:.2f} px from the host's (tolerance {TOLERANCE_PX})"
        )
    if reflash:
        # The card as it came out of the device, flashed again with another config.
        again = work / f"{style}-reflashed.img"
        summary["reflash seconds"] = flash(card, again, work, device_id, "site2", token)
        card.unlink()
        second = one_boot(again, work / "boot2", device_id, "site2", token, timeout, expect_install=True)
        summary["second boot"] = second
        text = (work / "boot2" / "guest" / "console.log").read_text(errors="replace")
        if "provisioning again, keeping /var/lib/edgepose" not in text:
            raise GuestError("the re-flashed card's first boot did not say it provisioned again keeping the state")
        if second["device"]["outbox inode"] != first["device"]["outbox inode"]:
            raise GuestError("the event outbox was made anew on the re-flashed card; it should have been kept")
        summary["state kept"] = True
    if not keep:
        for img in work.glob("*.img"):
            img.unlink()
    return summary


STEPS = (
    ("kernel", "kernel"),
    ("systemd", "systemd"),
    ("cloud-init start", "cloud-init start"),
    ("cloud-init done", "cloud-init done"),
    ("firstrun reboot", "firstrun reboot"),
    ("install start", "install start"),
    ("compile start", "compile start"),
    ("provisioned", "provisioned"),
    ("service started", "service started"),
)


def table(summary: dict) -> str:
    rows = [f"| step ({summary['style']}) | first boot, s since power-on | re-flashed card |", "| --- | --- | --- |"]
    boots = [summary.get("first boot", {}), summary.get("second boot", {})]
    for label, key in STEPS + (("first keypoints", "first keypoints"),):
        cells = []
        for b in boots:
            v = b.get("marks", {}).get(key, b.get(key)) if b else None
            cells.append(f"{v:.0f}" if isinstance(v, (int, float)) else "-")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    for b, name in zip(boots, ("first", "second")):
        if b:
            rows.append(f"| power off to `offline` ({name}) | {b['power off']['seconds']:.0f} s | |")
    rows.append(f"| keypoints vs host, max | {summary['max px vs host']:.2f} px | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", choices=sorted(images.STYLES), default="trixie")
    ap.add_argument(
        "--reflash",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flash the booted card again and boot it (default: on for trixie)",
    )
    ap.add_argument("--timeout", type=float, default=3600, help="seconds a boot may take to its first keypoints")
    ap.add_argument("--keep", action="store_true", help="keep the flashed images in the cache folder")
    ap.add_argument("--summary", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("boot: run as root (mmdebstrap and mkfs.ext4 -d need it)", file=sys.stderr)
        return 2
    reflash = args.style == "trixie" if args.reflash is None else args.reflash
    try:
        summary = prove(args.style, reflash=reflash, timeout=args.timeout, keep=args.keep)
    except (GuestError, images.BuildError) as e:
        print(f"boot: FAILED: {e}", file=sys.stderr)
        return 1
    print(table(summary))
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
