"""`edgepose flash` on real MBR images (sfdisk + mformat): every file read back with mtools and checked."""

from __future__ import annotations

import hashlib
import json
import lzma
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name, parse_wheel_filename

from edgepose.errors import ConfigError
from edgepose.provision import firstboot as fb
from edgepose.provision.secrets import check_passphrase, sha512_crypt, wpa_psk
from tests.conftest import REPO
from tests.conftest_provision import (
    BOOT_SECTORS,
    BOOT_START,
    CMDLINE_TXT,
    CONFIG_TXT,
    DEVICE,
    STOCK_USER_DATA,
    fat_read,
    flash_cli,
    make_pi_image,
    mtools,
)

PASSPHRASE = "Tr0ub4dor&3-horse battery"
SSID = "Café-Net 5G"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1rE0yR1o0tqNw3V1dC2W2y3c3lq6l1Jm2kq3dY0pX alice@laptop"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fat_walk(image: Path, folder: str) -> list[str]:
    out = mtools("mdir", "-/", "-b", "-i", f"{image}@@{BOOT_START}", f"::/{folder}").decode()
    prefix = f"::/{folder}/"
    return sorted(ln[len(prefix) :] for ln in out.split() if ln.startswith(prefix) and not ln.endswith("/"))


def fat_root(image: Path) -> set[str]:
    out = mtools("mdir", "-b", "-i", f"{image}@@{BOOT_START}", "::/").decode()
    return {ln.strip().rstrip("/").rsplit("/", 1)[-1] for ln in out.splitlines() if ln.strip()}


def outside_boot(image: Path) -> str:
    """sha256 of everything but the boot partition: the MBR, the gap and the Linux partition."""
    h = hashlib.sha256()
    with open(image, "rb") as f:
        h.update(f.read(BOOT_START))
        f.seek(BOOT_START + BOOT_SECTORS * 512)
        h.update(f.read())
    return h.hexdigest()


@pytest.fixture
def key_file(tmp_path) -> Path:
    p = tmp_path / "id_ed25519.pub"
    p.write_text(KEY + "\n")
    return p


# -- the full path: a cloud-init image (.xz) ----------------------------------------------------------


@pytest.mark.integration
def test_flash_cloud_init_image_from_xz(tmp_path, pi4_bundle, key_file):
    raw = make_pi_image(tmp_path / "raspios.img", cloud_init=True)
    src = tmp_path / "raspios.img.xz"
    with open(raw, "rb") as fin, lzma.open(src, "wb", preset=0) as fout:
        shutil.copyfileobj(fin, fout, 4 << 20)
    stock_outside = outside_boot(raw)
    raw.unlink()
    before = sha(src)
    out = tmp_path / "out" / "custom.img"
    r = flash_cli(
        "--image",
        str(src),
        "--out",
        str(out),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--hostname",
        "kitchen-cam",
        "--ssh-key",
        str(key_file),
        "--wifi-ssid",
        SSID,
        "--wifi-country",
        "de",
        "--bundle",
        str(pi4_bundle),
        "--camera",
        "imx708",
        env={"EDGEPOSE_WIFI_PASSWORD": PASSPHRASE},
    )
    assert r.returncode == 0, r.stderr
    assert "first boot via cloud-init" in r.stdout
    # a cloud-init image is Trixie-based (Python 3.13); the session bundle is for 3.11: said, not fatal
    assert "warning: the bundle is for Python 3.11, this image looks like Python 3.13" in r.stderr
    assert sha(src) == before  # the input is only read
    assert sorted(p.name for p in out.parent.iterdir()) == ["custom.img"]  # no temp file left

    # the bundle, every file read back from the FAT partition and checked against the manifest
    files = fat_walk(out, "edgepose")
    manifest = dict(
        reversed(ln.split("  ", 1)) for ln in fat_read(out, "edgepose/MANIFEST.sha256").decode().splitlines()
    )
    assert set(files) == set(manifest) | {"MANIFEST.sha256"}
    for rel in files:
        data = fat_read(out, f"edgepose/{rel}")
        assert data == (pi4_bundle / rel).read_bytes(), rel
        if rel != "MANIFEST.sha256":
            assert hashlib.sha256(data).hexdigest() == manifest[rel], rel
    wheels = {
        canonicalize_name(parse_wheel_filename(Path(f).name)[0]): parse_wheel_filename(Path(f).name)[3]
        for f in files
        if f.startswith("wheels/")
    }
    for dep in (
        "numpy",
        "opencv-python-headless",
        "ai-edge-litert",
        "paho-mqtt",
        "pydantic",
        "scipy",
        "platformdirs",
        "tqdm",
        "flatbuffers",
    ):
        assert dep in wheels, dep
        assert all(t.platform == "any" or t.platform.endswith("aarch64") for t in wheels[dep]), dep
    assert any(re.fullmatch(r"dist/edgepose-[\d.]+-py3-none-any\.whl", f) for f in files)
    assert fat_read(out, "edgepose/device.toml") == DEVICE.read_bytes()
    assert fat_read(out, "edgepose/boards/pi4.toml") == (REPO / "firmware_configs" / "boards" / "pi4.toml").read_bytes()

    # cloud-init: merged into the stock files, accepted by cloud-init's own schema check
    ud_bytes = fat_read(out, "user-data")
    ud = yaml.safe_load(ud_bytes)
    assert ud["hostname"] == "kitchen-cam" and ud["timezone"] == "Europe/London"  # the image's own keys are kept
    # Imager 2.x's singular `user:` (extends the distro's default user, keeps its groups); sshd enabled by runcmd
    user = ud["user"]
    assert "users" not in ud
    assert user["name"] == "pi" and user["ssh_authorized_keys"] == [KEY] and user["lock_passwd"] is True
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"  # key-only: no password to give sudo
    assert ud["runcmd"][0] == ["sh", "-c", "echo stock runcmd ran > /var/tmp/stock"]
    assert ud["runcmd"][1:] == [fb.SSH_ENABLE_CMD, fb.FIRSTBOOT_CMD] and "packages" not in ud
    assert ud["manage_resolv_conf"] is False
    (tmp_path / "ud.yaml").write_bytes(ud_bytes)
    schema = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(tmp_path / "ud.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    net = yaml.safe_load(fat_read(out, "network-config"))["network"]
    assert net["ethernets"]["eth0"]["dhcp4"] is True  # stock ethernet kept
    wlan = net["wifis"]["wlan0"]
    expected_psk = hashlib.pbkdf2_hmac("sha1", PASSPHRASE.encode(), SSID.encode(), 4096, 32).hex()
    assert wlan["access-points"] == {SSID: {"password": expected_psk}} and wlan["regulatory-domain"] == "DE"
    assert "renderer" not in net and "renderer" not in net["wifis"]  # the OS's netplan default decides, as with Imager
    # a new instance id per flash, also on the kernel command line (Imager 2.x: ds=nocloud;i=<id>)
    instance = yaml.safe_load(fat_read(out, "meta-data"))["instance-id"]
    assert instance != "rpios-image" and re.fullmatch(r"edgepose-\d{8}T\d{6}Z-[0-9a-f]{6}", instance)
    assert fat_read(out, "ssh") == b""

    # config.txt: the camera lines and nothing else
    new = fat_read(out, "config.txt").decode().splitlines()
    old = CONFIG_TXT.splitlines()
    assert [ln for ln in new if ln not in old] == ["camera_auto_detect=0", "dtoverlay=imx708"]
    assert [ln for ln in old if ln not in new] == ["camera_auto_detect=1"]
    assert fat_read(out, "cmdline.txt").decode() == CMDLINE_TXT.strip() + f" ds=nocloud;i={instance}\n"

    # the passphrase is nowhere: not in the image, not in the output
    blob = out.read_bytes()
    for form in (PASSPHRASE.encode(), PASSPHRASE.encode("utf-16-le")):
        assert form not in blob
    assert PASSPHRASE not in r.stdout + r.stderr
    assert outside_boot(out) == stock_outside  # partition table and the Linux partition untouched


# -- Bookworm: Imager's firstrun.sh + cmdline.txt, bundle made on the fly ----------------------------------


@pytest.mark.integration
def test_flash_bookworm_image_uses_firstrun(tmp_path, pi4_bundle, key_file):
    src = make_pi_image(tmp_path / "bookworm.img", cloud_init=False)
    before = sha(src)
    (tmp_path / "wifi.txt").write_text("hunter2hunter2\n")
    (tmp_path / "pw.txt").write_text("s3cret-login\n")
    out = tmp_path / "custom.img"
    r = flash_cli(
        "--image",
        str(src),
        "--out",
        str(out),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--user",
        "alice",
        "--ssh-key",
        str(key_file),
        "--wifi-ssid",
        "HomeNet",
        "--wifi-country",
        "GB",
        "--wifi-password-file",
        str(tmp_path / "wifi.txt"),
        "--user-password-file",
        str(tmp_path / "pw.txt"),
    )
    assert r.returncode == 0, r.stderr
    assert "first boot via firstrun" in r.stdout and sha(src) == before
    assert "warning" not in r.stderr  # made on the fly for the image's Python (Bookworm: 3.11)
    root = fat_root(out)
    assert {"firstrun.sh", "cmdline.txt", "edgepose", "ssh"} <= root and not root & {
        "user-data",
        "network-config",
        "meta-data",
    }
    # the bundle made on the fly (warm wheel cache) has the same wheels as the session's
    assert {f for f in fat_walk(out, "edgepose") if f.startswith("wheels/")} == {
        f"wheels/{p.name}" for p in (pi4_bundle / "wheels").iterdir()
    }
    cmdline = fat_read(out, "cmdline.txt").decode()
    assert cmdline.count("\n") == 1 and cmdline.startswith(
        CMDLINE_TXT.strip() + " systemd.run=/boot/firmware/firstrun.sh "
    )
    script = fat_read(out, "firstrun.sh").decode()
    (tmp_path / "firstrun.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "firstrun.sh")], check=False).returncode == 0
    psk = wpa_psk("HomeNet", "hunter2hunter2")
    assert f"imager_custom set_wlan HomeNet {psk} GB" in script and f"psk={psk}" in script
    assert KEY in script and "systemctl enable edgepose-firstboot.service" in script
    # hostname defaults to the config's device_id; the password only as SHA-512 crypt, which openssl reproduces
    assert "set_hostname edgepose-01" in script
    crypt = re.search(r"userconf alice '(\$6\$[^']+)'", script).group(1)
    salt = crypt.split("$")[2]
    again = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input="s3cret-login\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert again == crypt
    blob = out.read_bytes()
    assert b"hunter2hunter2" not in blob and b"s3cret-login" not in blob
    assert "hunter2" not in r.stdout + r.stderr and "s3cret" not in r.stdout + r.stderr
    assert fat_read(out, "config.txt").decode() == CONFIG_TXT  # camera auto-detect already on: unchanged


@pytest.mark.integration
def test_first_boot_override_and_usb_camera_profile(tmp_path, pi4_bundle):
    src = make_pi_image(tmp_path / "trixie.img", cloud_init=True)
    out = tmp_path / "o.img"
    tar = tmp_path / "bundle.tar"
    with tarfile.open(tar, "w") as t:  # the layout of `edgepose bundle --out FILE.tar`
        t.add(pi4_bundle, arcname="edgepose")
    r = flash_cli(
        "--image",
        str(src),
        "--out",
        str(out),
        "--profile",
        "generic-arm64",
        "--config",
        str(DEVICE),
        "--bundle",
        str(tar),
        "--first-boot",
        "firstrun",
        "--camera",
        "imx219",
        no_progress=False,
    )
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "%|" not in r.stderr, r.stderr  # a pipe, even without --no-progress: no bar
    assert "first boot via firstrun" in r.stdout
    assert "warning: no --ssh-key and no user password: nobody can log in as pi" in r.stderr
    assert fat_read(out, "user-data").decode() == STOCK_USER_DATA  # cloud-init files untouched
    assert "firstrun.sh" in fat_root(out) and "ssh" not in fat_root(out)
    assert fat_read(out, "config.txt").decode() == CONFIG_TXT  # a USB-camera profile leaves config.txt alone
    assert fat_read(out, "edgepose/MANIFEST.sha256") == (pi4_bundle / "MANIFEST.sha256").read_bytes()


# -- bad input: one line, non-zero exit, input untouched, nothing half-written --------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "case, message",
    [
        ("no-fat", "has no FAT boot partition"),
        ("unknown-profile", "unknown board profile 'pi9'"),
        ("missing-config", "does not exist"),
        ("invalid-config", "decode.min_pose_score"),
        ("long-ssid", "SSID is 33 bytes long"),
        ("short-passphrase", "passphrase has 7 characters"),
        ("long-passphrase", "passphrase has 64 characters"),
        ("no-passphrase", "no Wi-Fi passphrase given"),
        ("bad-hostname", "host name 'my_pi' is not valid"),
        ("bad-key", "is not an SSH public key file"),
    ],
)
def test_bad_input(tmp_path, pi4_bundle, case, message):
    src = make_pi_image(tmp_path / "in.img", cloud_init=True, fat=case != "no-fat")
    before = sha(src)
    bad = tmp_path / "bad.toml"
    bad.write_text('device_id = "x"\n[decode]\nmin_pose_score = 2.0\n')
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    args = {
        "--image": str(src),
        "--out": str(outdir / "o.img"),
        "--profile": "pi4",
        "--config": str(DEVICE),
        "--bundle": str(pi4_bundle),
    }
    env = {}
    extra: list[str] = []
    if case == "unknown-profile":
        args["--profile"] = "pi9"
    elif case == "missing-config":
        args["--config"] = str(tmp_path / "nope.toml")
    elif case == "invalid-config":
        args["--config"] = str(bad)
    elif case in ("long-ssid", "short-passphrase", "long-passphrase", "no-passphrase"):
        extra = ["--wifi-ssid", "x" * 33 if case == "long-ssid" else "net", "--wifi-country", "GB"]
        env["EDGEPOSE_WIFI_PASSWORD"] = {"short-passphrase": "1234567", "long-passphrase": "p" * 64}.get(
            case, "longenough"
        )
        if case == "no-passphrase":
            del env["EDGEPOSE_WIFI_PASSWORD"]
    elif case == "bad-hostname":
        extra = ["--hostname", "my_pi"]
    elif case == "bad-key":
        (tmp_path / "key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        extra = ["--ssh-key", str(tmp_path / "key")]
    r = flash_cli(*[x for kv in args.items() for x in kv], *extra, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepose flash: error: ") and "Fix:" in lines[0], r.stderr
    assert message in lines[0]
    if case == "unknown-profile":
        assert "pi4" in lines[0] and "pi5" in lines[0]
    assert sha(src) == before
    assert list(outdir.iterdir()) == []  # no --out, no temp file


@pytest.mark.integration
def test_bundle_too_big_for_the_boot_partition(tmp_path, pi4_bundle):
    """A 40 MiB FAT32 partition cannot hold the ~100 MB bundle: refused before writing, nothing left."""
    img = tmp_path / "small.img"
    with open(img, "wb") as f:
        f.truncate(48 << 20)
    subprocess.run(
        [shutil.which("sfdisk") or "/usr/sbin/sfdisk", "-q", str(img)],
        input="label: dos\nstart=8192, size=81920, type=c\n",
        text=True,
        check=True,
        capture_output=True,
    )
    mtools("mformat", "-i", f"{img}@@{BOOT_START}", "-F", "-T", "81920", "-h", "64", "-s", "32", "::")
    r = flash_cli(
        "--image",
        str(img),
        "--out",
        str(tmp_path / "o.img"),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--bundle",
        str(pi4_bundle),
    )
    assert r.returncode == 2 and "boot partition has" in r.stderr and "MB free" in r.stderr
    assert not (tmp_path / "o.img").exists() and not list(tmp_path.glob(".o.img*"))


# -- units -------------------------------------------------------------------------------------------


def test_wpa_psk_matches_the_standard_vectors():
    # IEEE 802.11i-2004, Annex H.4.3
    assert wpa_psk("IEEE", "password") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    assert (
        wpa_psk("ThisIsASSID", "ThisIsAPassword") == "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
    )
    with pytest.raises(ConfigError, match="8 to 63 printable ASCII"):
        check_passphrase("pässword1")


def test_sha512_crypt_never_puts_the_password_on_the_command_line():
    h = sha512_crypt("correct horse")
    assert h.startswith("$6$") and "correct" not in h
    assert sha512_crypt("correct horse") != h  # a fresh salt each time


@pytest.mark.parametrize(
    "camera, added, removed",
    [
        ("auto", [], []),
        ("imx477", ["camera_auto_detect=0", "dtoverlay=imx477"], ["camera_auto_detect=1"]),
        ("none", [], []),
    ],
)
def test_config_txt_camera_lines(camera, added, removed):
    new = fb.config_txt(CONFIG_TXT.encode(), camera).decode().splitlines()
    old = CONFIG_TXT.splitlines()
    assert [ln for ln in new if ln not in old] == added and [ln for ln in old if ln not in new] == removed


def test_config_txt_without_camera_line_and_trailing_section():
    text = b"dtparam=audio=on\n[pi4]\narm_boost=1\n"
    assert (
        fb.config_txt(text, "imx219")
        == b"dtparam=audio=on\n[pi4]\narm_boost=1\n[all]\ncamera_auto_detect=0\ndtoverlay=imx219\n"
    )


def test_user_data_replaces_a_user_of_the_same_name():
    existing = (
        b"#cloud-config\nusers:\n- name: pi\n  passwd: old\n- name: other\nruncmd:\n- "
        + json.dumps(fb.FIRSTBOOT_CMD).encode()
        + b"\n"
    )
    c = fb.Customisation(hostname="a1", ssh_keys=[KEY])
    ud = yaml.safe_load(fb.user_data(existing, c))
    assert [u["name"] for u in ud["users"]] == ["other"]  # the image's own entry of that name would override ours
    assert ud["user"]["name"] == "pi" and "passwd" not in ud["user"]
    assert ud["runcmd"] == [fb.FIRSTBOOT_CMD, fb.SSH_ENABLE_CMD]  # firstboot not added twice
    assert ud["ssh_pwauth"] is False


@pytest.mark.integration
def test_user_data_with_password_passes_cloud_init_schema(tmp_path):
    c = fb.Customisation(hostname="cam-2", user="alice", ssh_keys=[KEY], password_hash=sha512_crypt("pw-for-test"))
    ud = fb.user_data(STOCK_USER_DATA.encode(), c)
    (tmp_path / "ud").write_bytes(ud)
    r = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(tmp_path / "ud")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    user = yaml.safe_load(ud)["user"]
    assert user["passwd"].startswith("$6$") and user["lock_passwd"] is False and b"pw-for-test" not in ud
    assert user["sudo"] is None  # with a password, sudo asks for it (Imager's `sudo: null`)


@pytest.mark.integration
def test_flashing_a_flashed_image_again_makes_a_new_first_boot(tmp_path, pi4_bundle, key_file):
    """A card flashed twice: a new instance id each time, one ds= word, one firstboot runcmd, the secrets replaced."""
    src = make_pi_image(tmp_path / "raspios.img", cloud_init=True)
    secrets_file = tmp_path / "secrets.env"
    ids, lines = [], []
    for n, (inp, token) in enumerate(((src, "first"), (tmp_path / "out1.img", "second")), 1):
        secrets_file.write_text(f"# the page's token\nEDGEPOSE_HTTP_TOKEN='{token}'\n")
        r = flash_cli(
            "--image",
            str(inp),
            "--out",
            str(tmp_path / f"out{n}.img"),
            "--profile",
            "pi4",
            "--config",
            str(DEVICE),
            "--ssh-key",
            str(key_file),
            "--bundle",
            str(pi4_bundle),
            "--secrets",
            str(secrets_file),
        )
        assert r.returncode == 0, r.stderr
        out = tmp_path / f"out{n}.img"
        ids.append(yaml.safe_load(fat_read(out, "meta-data"))["instance-id"])
        lines.append(fat_read(out, "cmdline.txt").decode())
        ud = yaml.safe_load(fat_read(out, "user-data"))
        assert ud["runcmd"].count(fb.FIRSTBOOT_CMD) == 1 and ud["runcmd"].count(fb.SSH_ENABLE_CMD) == 1
        assert fat_read(out, "edgepose-secrets.env") == f'EDGEPOSE_HTTP_TOKEN="{token}"\n'.encode()
    assert ids[0] != ids[1]
    for line, instance in zip(lines, ids):
        assert line.count("ds=nocloud") == 1 and line.rstrip("\n").endswith(f" ds=nocloud;i={instance}")
    assert lines[1].replace(ids[1], ids[0]) == lines[0]  # nothing else on the line changed


@pytest.mark.integration
def test_secrets_file_errors_name_the_line(tmp_path, pi4_bundle):
    bad = tmp_path / "bad.env"
    for text, words in (("EDGEPOSE TOKEN=1\n", "line 1"), ("A=1\nnot a pair\n", "line 2"), (b"T=\xff\n", "not UTF-8")):
        bad.write_bytes(text if isinstance(text, bytes) else text.encode())
        r = flash_cli(
            "--image",
            str(tmp_path / "none.img"),
            "--out",
            str(tmp_path / "o.img"),
            "--profile",
            "pi4",
            "--config",
            str(DEVICE),
            "--secrets",
            str(bad),
            "--bundle",
            str(pi4_bundle),
        )
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.integration
def test_flash_write_to_a_card(tmp_path, pi4_bundle):
    """--write end to end: the recorded lsblk names a 'card' that is a file here; written, read back, verified."""
    src = make_pi_image(tmp_path / "in.img", cloud_init=True)
    card = tmp_path / "card.bin"
    with open(card, "wb") as f:
        f.truncate(src.stat().st_size + (8 << 20))
    recording = tmp_path / "lsblk.json"
    recording.write_text(
        json.dumps(
            {
                "blockdevices": [
                    {
                        "name": "mmcblk0",
                        "path": "/dev/mmcblk0",
                        "size": 31914983424,
                        "type": "disk",
                        "rm": False,
                        "hotplug": False,
                        "ro": False,
                        "tran": "mmc",
                        "model": None,
                        "mountpoints": [None],
                        "children": [
                            {
                                "name": "mmcblk0p1",
                                "path": "/dev/mmcblk0p1",
                                "size": 536870912,
                                "type": "part",
                                "rm": False,
                                "hotplug": False,
                                "ro": False,
                                "tran": None,
                                "model": None,
                                "mountpoints": ["/boot/firmware"],
                            },
                            {
                                "name": "mmcblk0p2",
                                "path": "/dev/mmcblk0p2",
                                "size": 31373049856,
                                "type": "part",
                                "rm": False,
                                "hotplug": False,
                                "ro": False,
                                "tran": None,
                                "model": None,
                                "mountpoints": ["/"],
                            },
                        ],
                    },
                    {
                        "name": "sda",
                        "path": str(card),
                        "size": card.stat().st_size,
                        "type": "disk",
                        "rm": True,
                        "hotplug": True,
                        "ro": False,
                        "tran": "usb",
                        "model": "SD Card Reader",
                        "mountpoints": [None],
                    },
                ]
            }
        )
    )
    out = tmp_path / "o.img"
    r = flash_cli(
        "--image",
        str(src),
        "--out",
        str(out),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--bundle",
        str(pi4_bundle),
        "--write",
        str(card),
        env={"EDGEPOSE_LSBLK_JSON": str(recording)},
    )
    assert r.returncode == 0, r.stderr
    assert f"wrote and verified {card}" in r.stdout and sha(out) in r.stdout
    with open(card, "rb") as f:
        assert hashlib.sha256(f.read(out.stat().st_size)).hexdigest() == sha(out)
    assert fat_read(card, "edgepose/MANIFEST.sha256") == (pi4_bundle / "MANIFEST.sha256").read_bytes()
    # the Pi's own card is refused before anything is written
    r = flash_cli(
        "--image",
        str(src),
        "--out",
        str(tmp_path / "x.img"),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--bundle",
        str(pi4_bundle),
        "--write",
        "/dev/mmcblk0",
        env={"EDGEPOSE_LSBLK_JSON": str(recording)},
    )
    assert r.returncode == 2 and "holds /, /boot/firmware" in r.stderr and not (tmp_path / "x.img").exists()
