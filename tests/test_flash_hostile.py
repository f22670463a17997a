"""Hostile and careless values given to `edgepose flash` (issue 21, class 1).

Every value that ends up inside a generated file is either refused in one line (exit 2, ``Fix:``, no --out, input
untouched) or stored so that user-data/network-config/meta-data parse to exactly the intended keys, every script
passes ``bash -n``, and the firstrun.sh Wi-Fi and host-name steps, run in a mount namespace whose /etc is a scratch
folder, write exactly the intended values.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edgepose.errors import ConfigError
from edgepose.provision import firstboot as fb
from edgepose.provision.secrets import wpa_psk
from tests import conftest_provision
from tests.conftest_provision import DEVICE, fat_read, make_pi_image

BLOB = "AAAAC3NzaC1lZDI1NTE5AAAAIGq1rE0yR1o0tqNw3V1dC2W2y3c3lq6l1Jm2kq3dY0pX"
PASSPHRASE = "correct horse battery"
#: SSIDs a real access point may broadcast (spaces, quotes, '#', '$', YAML and shell syntax, unicode, <= 32 bytes).
GOOD_SSIDS = [
    "HomeNet",
    "WPAEOF",  # the old heredoc delimiter, as a whole SSID
    'Joe\'s "Café" #1 $(id)',
    "x'; touch /tmp/pwned; echo '",
    "`reboot`",
    "$HOME ${PATH} $((1+1))",
    "yes",  # YAML 1.1 boolean
    "null",
    "~",
    "0x1F",
    "1e3",
    "- &a *a: {b} [c]",
    "#not a comment",
    " leading and trailing ",
    "back\\slash\\n",
    "%s%n%x",
    "Café-Net 5G ☕",
    "日本語のネットワーク",  # 30 bytes
    "é" * 16,  # 32 bytes exactly
    "x" * 32,
    "!",
    "a=b",
    "}network={",
]
#: SSIDs that cannot be represented (control characters, line breaks, too long, not UTF-8): refused.
BAD_SSIDS = [
    ("x\nWPAEOF\ntouch /tmp/pwned\nWPAEOF", "control character"),  # the injection of issue 21
    ("net\n", "control character"),
    ("tab\there", "control character"),
    ("cr\rlf", "control character"),
    ("\x1b[31mred", "control character"),
    ("line\u2028sep", "control character"),
    ("bom\ufeff", "control character"),
    ("x" * 33, "33 bytes long"),
    ("é" * 17, "34 bytes long"),
    ("", "0 bytes long"),
    (b"caf\xe9", "not valid UTF-8"),  # Latin-1 bytes on the command line
]
KEY_COMMENTS = [
    "alice@laptop",
    "o'brien $(reboot) `id` #x",
    "key: value {a: b} - [c]",
    "ünïcødé ☕",
    "'\"'\"'",
    "; rm -rf / #",
]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


flash_cli = functools.partial(
    conftest_provision.flash_cli, text=False
)  # bytes: argv and env may carry non-UTF-8 on purpose


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    return make_pi_image(tmp_path_factory.mktemp("hostile") / "in.img", cloud_init=True)


def key_line(comment: str) -> str:
    return f"ssh-ed25519 {BLOB} {comment}"


# -- refused in one line ----------------------------------------------------------------------------------


def _refusals() -> list:
    cases = []
    for ssid, msg in BAD_SSIDS:
        cases.append(
            pytest.param(
                {"--wifi-ssid": ssid, "--wifi-country": "GB"},
                {"EDGEPOSE_WIFI_PASSWORD": PASSPHRASE},
                {},
                msg,
                id=f"ssid-{ssid[:12]!r}",
            )
        )
    for host in [
        "kitchen-cam\n",
        "a" * 64,
        "café",
        "-lead",
        "trail-",
        "my_pi",
        "two words",
        "",
        "a;reboot",
        "$(id)",
        "ｋｉｔｃｈｅｎ",
        "cam.local",
        b"cam\xff",
    ]:
        cases.append(pytest.param({"--hostname": host}, {}, {}, "host name", id=f"hostname-{host[:12]!r}"))
    for user in ["root", "Pi", "pi\n", "a" * 33, "pi;id", "$(id)", "ünï", "-pi", ""]:
        cases.append(pytest.param({"--user": user}, {}, {}, "user name", id=f"user-{user[:12]!r}"))
    for cc in ["G", "GBR", "G1", "gb\n", "ÉÉ", "$(", ""]:
        cases.append(
            pytest.param(
                {"--wifi-ssid": "HomeNet", "--wifi-country": cc},
                {"EDGEPOSE_WIFI_PASSWORD": PASSPHRASE},
                {},
                "Wi-Fi country" if cc else "needs --wifi-country",
                id=f"country-{cc!r}",
            )
        )
    keys: dict[str, bytes] = {
        "private": b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        "empty": b"",
        "comments-only": b"# my key\n\n",
        "nul-in-comment": key_line("a\x00b").encode(),
        "escape-in-comment": key_line("\x1b]0;pwned\x07").encode(),
        "options": f'command="rm -rf /" {key_line("x")}'.encode(),
        "latin1": key_line("caf\xe9").encode("latin-1"),
        "huge": (key_line("x") + "\n").encode() * 2000,
        "u2028": key_line("a\u2028ssh-rsa AAAA").encode(),
    }
    for name, data in keys.items():
        msg = {"latin1": "not UTF-8", "huge": "larger than 64 KiB"}.get(name, "not an SSH public key file")
        cases.append(pytest.param({"--ssh-key": "FILE"}, {}, {"FILE": data}, msg, id=f"key-{name}"))
    cases.append(pytest.param({"--ssh-key": "/dev/zero"}, {}, {}, "larger than 64 KiB", id="key-dev-zero"))
    cases.append(pytest.param({"--ssh-key": "/"}, {}, {}, "cannot read the SSH public key file", id="key-directory"))
    cases.append(
        pytest.param({"--ssh-key": "/nonexistent.pub"}, {}, {}, "cannot read the SSH public key file", id="key-missing")
    )
    pw_files = {
        "empty": b"",
        "first-line-empty": b"\nsecond\n",
        "latin1": "pässword".encode("latin-1"),
        "nul": b"pass\x00word\n",
        "tab": b"pass\tword\n",
        "vt": b"pass\x0bword\n",
    }
    for name, data in pw_files.items():
        msg = {"empty": "is empty", "first-line-empty": "is empty", "latin1": "not UTF-8"}.get(
            name, "control character"
        )
        cases.append(pytest.param({"--user-password-file": "FILE"}, {}, {"FILE": data}, msg, id=f"pwfile-{name}"))
    cases.append(
        pytest.param({"--user-password-file": "/dev/zero"}, {}, {}, "larger than 64 KiB", id="pwfile-dev-zero")
    )
    for name, value in {"empty": "", "newline": "pw\nroot::0:0:::", "cr": "pw\r", "latin1": b"p\xe4ssword"}.items():
        msg = {"empty": "is empty", "latin1": "not valid UTF-8"}.get(name, "control character")
        cases.append(pytest.param({}, {"EDGEPOSE_USER_PASSWORD": value}, {}, msg, id=f"pwenv-{name}"))
    for name, value in {
        "short": "1234567",
        "non-ascii": "pässwörd-long",
        "newline": "password\n123",
        "long": "p" * 64,
        "latin1": b"p\xe4sswordlong",
        "empty": "",
    }.items():
        msg = {"latin1": "not valid UTF-8", "empty": "is empty"}.get(name, "passphrase")
        cases.append(
            pytest.param(
                {"--wifi-ssid": "HomeNet", "--wifi-country": "GB"},
                {"EDGEPOSE_WIFI_PASSWORD": value},
                {},
                msg,
                id=f"wifi-pass-{name}",
            )
        )
    cases.append(
        pytest.param(
            {"--wifi-ssid": "HomeNet", "--wifi-country": "GB", "--wifi-password-file": "FILE"},
            {},
            {"FILE": b"\xff\xfepassword\n"},
            "not UTF-8",
            id="wifi-passfile-latin1",
        )
    )
    return cases


@pytest.mark.integration
@pytest.mark.parametrize("flags, env, files, message", _refusals())
def test_hostile_value_is_refused_in_one_line(tmp_path, image, pi4_bundle, flags, env, files, message):
    before = sha(image)
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    args: list[str | bytes] = [
        "--image",
        str(image),
        "--out",
        str(outdir / "o.img"),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--bundle",
        str(pi4_bundle),
    ]
    for flag, value in flags.items():
        if value == "FILE":
            value = str(tmp_path / "value")
            (tmp_path / "value").write_bytes(files["FILE"])
        # --flag=value: a value starting with '-' is still a value
        args.append(flag.encode() + b"=" + value if isinstance(value, bytes) else f"{flag}={value}")
    r = flash_cli(*args, env=env)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepose flash: error: ") and "Fix:" in lines[0], err
    assert message in lines[0]
    assert "Traceback" not in err and r.stdout == b""
    for secret in env.values():
        if secret and len(secret) > 3:
            assert (secret if isinstance(secret, bytes) else secret.encode()) not in r.stderr  # secrets never echoed
    assert sha(image) == before
    assert list(outdir.iterdir()) == []


@pytest.mark.integration
def test_device_id_with_a_newline_is_refused(tmp_path, image, pi4_bundle):
    """device_id is the default host name: 'cam-1\\n' must not pass the host-name check by '$' matching before '\\n'."""
    cfg = tmp_path / "device.toml"
    cfg.write_text(DEVICE.read_text().replace('device_id = "edgepose-01"', 'device_id = "cam-1\\n"'))
    assert '"cam-1\\n"' in cfg.read_text()
    r = flash_cli(
        "--image",
        str(image),
        "--out",
        str(tmp_path / "o.img"),
        "--profile",
        "pi4",
        "--config",
        str(cfg),
        "--bundle",
        str(pi4_bundle),
    )
    err = r.stderr.decode()
    assert r.returncode == 2 and len(err.strip().splitlines()) == 1 and "device_id" in err, err
    assert not (tmp_path / "o.img").exists()


def test_the_issue_21_injection_is_refused_by_the_library_too():
    """firstrun_block (and flash()) check the values themselves: a library caller cannot get the heredoc injection."""
    c = fb.Customisation(wifi_ssid="x\nWPAEOF\ntouch /tmp/pwned\nWPAEOF", wifi_psk="0" * 64, wifi_country="GB")
    with pytest.raises(ConfigError, match="control character"):
        fb.firstrun_block(c)
    for bad in (
        fb.Customisation(hostname="cam\n"),
        fb.Customisation(user="pi\n"),
        fb.Customisation(ssh_keys=[key_line("a\nb")]),
        fb.Customisation(password_hash="$6$salt$x'; reboot"),
        fb.Customisation(wifi_ssid="ok", wifi_psk="zz" * 32),
        fb.Customisation(wifi_ssid="ok", wifi_psk="0" * 64, wifi_country="G\nB"),
    ):
        with pytest.raises(ConfigError):
            bad.check()


# -- stored exactly ----------------------------------------------------------------------------------------


def run_firstrun_steps(block: str, tmp: Path) -> dict[str, str]:
    """Run firstrun.sh's edgepose block as root in a mount namespace whose /etc is a scratch folder.

    Commands that would touch the host (systemctl, rfkill, usermod, chpasswd, install, getent) are shims that only log.
    Returns what the block wrote to /etc/hostname, /etc/hosts and wpa_supplicant.conf.
    """
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0
    ):
        pytest.skip(
            "needs unshare -rm (user and mount namespaces) to run firstrun.sh's steps as root in a scratch /etc"
        )
    etc, shims, empty = tmp / "etc", tmp / "shims", tmp / "empty"
    for d in (etc / "wpa_supplicant", shims, empty):
        d.mkdir(parents=True)
    (etc / "hostname").write_text("raspberrypi\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    for cmd in ("systemctl", "rfkill", "usermod", "groupmod", "chpasswd", "install", "getent"):
        (shims / cmd).write_text(f'#!/bin/sh\necho "{cmd} $*" >>"{tmp}/shim.log"\n')
    # install SRC DEST keeps a copy of SRC (authorized_keys comes from a process substitution); chpasswd its stdin
    (shims / "install").write_text(
        f'#!/bin/bash\na=("$@"); n=${{#a[@]}}\nif [ $n -ge 2 ] && [ -f "${{a[n-2]}}" -o -p "${{a[n-2]}}" ]; '
        f'then cat "${{a[n-2]}}" >"{tmp}/installed-$(basename "${{a[n-1]}}")"; fi\n'
    )
    (shims / "chpasswd").write_text(f'#!/bin/sh\ncat >>"{tmp}/chpasswd.in"\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    (tmp / "block.sh").write_text(block)
    binds = [f"mount --bind {etc} /etc"] + [
        f"mount --bind {empty} {d}" for d in ("/boot", "/var/lib/systemd") if Path(d).is_dir()
    ]
    inner = " && ".join(binds) + f" && PATH={shims}:/usr/bin:/bin exec bash {tmp / 'block.sh'}"
    r = subprocess.run(["unshare", "-rm", "bash", "-c", inner], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    wpa = etc / "wpa_supplicant" / "wpa_supplicant.conf"
    keys, chpasswd = tmp / "installed-authorized_keys", tmp / "chpasswd.in"
    return {
        "hostname": (etc / "hostname").read_text(),
        "hosts": (etc / "hosts").read_text(),
        "wpa": wpa.read_text(encoding="utf-8") if wpa.exists() else "",
        "authorized_keys": keys.read_text() if keys.exists() else "",
        "chpasswd": chpasswd.read_text() if chpasswd.exists() else "",
    }


def ssid_of_wpa_conf(conf: str) -> str:
    """What wpa_supplicant reads as the SSID: "quoted" text, else hex bytes."""
    (value,) = re.findall(r"^\tssid=(.*)$", conf, re.MULTILINE)
    if value.startswith('"'):
        assert value.endswith('"') and '"' not in value[1:-1]
        return value[1:-1]
    return bytes.fromhex(value).decode("utf-8")


def check_firstrun(
    script: str, tmp: Path, *, hostname: str | None, ssid: str, psk: str, country: str, keys: list[str]
) -> dict[str, str]:
    (tmp / "firstrun.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp / "firstrun.sh")], capture_output=True, check=False).returncode == 0
    assert "<<" not in script  # no heredoc at all: nothing for a value to terminate
    # imager_custom gets each value as one argument, exactly
    (wlan,) = [ln for ln in script.splitlines() if "imager_custom set_wlan" in ln]
    assert shlex.split(wlan)[1:] == ["set_wlan", ssid, psk, country]
    if keys:
        (ssh,) = [ln for ln in script.splitlines() if "imager_custom enable_ssh" in ln]
        assert shlex.split(ssh)[3:] == keys
    block = script[script.index("# --- edgepose flash ---") : script.index("# --- end edgepose flash ---")]
    got = run_firstrun_steps(block, tmp / "sandbox")
    assert ssid_of_wpa_conf(got["wpa"]) == ssid
    assert [ln for ln in got["wpa"].split("\n") if not ln.startswith("\tssid=")] == [
        f"country={country}",
        "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev",
        "ap_scan=1",
        "update_config=1",
        "network={",
        f"\tpsk={psk}",
        "}",
        "",
    ]
    if hostname:
        assert got["hostname"] == hostname + "\n"
        assert got["hosts"] == f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
    if keys:
        assert got["authorized_keys"] == "".join(k + "\n" for k in keys)
    assert not Path("/tmp/pwned").exists()
    return got


@pytest.mark.integration
@pytest.mark.parametrize("ssid", GOOD_SSIDS)
def test_real_ssid_is_written_exactly_by_firstrun(tmp_path, ssid):
    """Every legal SSID: firstrun.sh parses, and its wpa_supplicant step writes exactly that SSID (hex unless plain)."""
    psk = wpa_psk(ssid, PASSPHRASE)
    c = fb.Customisation(hostname="cam-1", wifi_ssid=ssid, wifi_psk=psk, wifi_country="DE")
    check_firstrun(
        fb.firstrun_sh(None, c).decode(), tmp_path, hostname="cam-1", ssid=ssid, psk=psk, country="DE", keys=[]
    )
    assert fb.wpa_ssid(ssid) == (f'"{ssid}"' if re.fullmatch(r"[A-Za-z0-9 _.+-]+", ssid) else ssid.encode().hex())


@pytest.mark.parametrize("ssid", GOOD_SSIDS)
def test_real_ssid_round_trips_through_network_config(ssid):
    psk = wpa_psk(ssid, PASSPHRASE)
    net = yaml.safe_load(fb.network_config(None, fb.Customisation(wifi_ssid=ssid, wifi_psk=psk, wifi_country="DE")))
    assert list(net) == ["network"]
    assert net["network"]["wifis"]["wlan0"]["access-points"] == {ssid: {"password": psk}}


def _password_file(tmp: Path, password: str) -> Path:
    p = tmp / "pw.txt"
    # A Notepad-saved file: neither the byte-order mark nor the CR is part of the password.
    p.write_bytes(b"\xef\xbb\xbf" + password.encode() + b"\r\n")
    return p


def _verify_crypt(crypt: str, password: str) -> None:
    salt = crypt.split("$")[2]
    again = (
        subprocess.run(
            ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
            input=password.encode() + b"\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    assert again == crypt


@pytest.mark.parametrize(
    "ssid, hostname, user, password",
    [
        ('Joe\'s "Café" #1 $(id)', "k" * 63, "_svc-1", "pa'ss\"w$(reboot)`id`#: {x} ☕"),
        ("- &a *a: {b} [c]", "Cam-2", "pi", " spaced # not a comment "),
    ],
)
@pytest.mark.integration
def test_cloud_init_flash_stores_hostile_values_exactly(tmp_path, image, pi4_bundle, ssid, hostname, user, password):
    keys = [key_line(c) for c in KEY_COMMENTS]
    (tmp_path / "key.pub").write_bytes(("\ufeff# comment line\r\n" + "\r\n".join(keys) + "\r\n").encode())  # BOM, CRLF
    out = tmp_path / "o.img"
    r = flash_cli(
        "--image",
        str(image),
        "--out",
        str(out),
        "--profile",
        "pi4",
        "--config",
        str(DEVICE),
        "--bundle",
        str(pi4_bundle),
        f"--hostname={hostname}",
        f"--user={user}",
        "--ssh-key",
        str(tmp_path / "key.pub"),
        f"--wifi-ssid={ssid}",
        "--wifi-country=nz",
        "--user-password-file",
        str(_password_file(tmp_path, password)),
        env={"EDGEPOSE_WIFI_PASSWORD": PASSPHRASE},
    )
    assert r.returncode == 0, r.stderr.decode()
    ud = yaml.safe_load(fat_read(out, "user-data"))
    assert set(ud) == {
        "package_update",
        "timezone",
        "runcmd",
        "hostname",
        "manage_etc_hosts",
        "user",
        "ssh_pwauth",
        "final_message",
        "manage_resolv_conf",
    }
    assert ud["hostname"] == hostname
    me = ud["user"]
    assert set(me) == {"name", "shell", "sudo", "lock_passwd", "passwd", "ssh_authorized_keys"}
    assert me["name"] == user and me["ssh_authorized_keys"] == keys and me["lock_passwd"] is False
    _verify_crypt(me["passwd"], password)
    assert ud["runcmd"][-2:] == [fb.SSH_ENABLE_CMD, fb.FIRSTBOOT_CMD]
    net = yaml.safe_load(fat_read(out, "network-config"))
    assert set(net) == {"network"} and set(net["network"]) == {"version", "ethernets", "wifis"}
    wlan = net["network"]["wifis"]["wlan0"]
    assert (
        wlan["access-points"] == {ssid: {"password": wpa_psk(ssid, PASSPHRASE)}} and wlan["regulatory-domain"] == "NZ"
    )
    md = yaml.safe_load(fat_read(out, "meta-data"))
    assert set(md) == {"instance-id", "local-hostname"} and md["local-hostname"] == hostname
    assert md["instance-id"].startswith("edgepose-")
    blob = out.read_bytes()
    assert password.encode() not in blob and PASSPHRASE.encode() not in blob


@pytest.mark.integration
@pytest.mark.parametrize("ssid", ["WPAEOF", "x'; touch /tmp/pwned; echo '", "Café-Net 5G ☕"])
def test_firstrun_flash_writes_hostile_values_exactly(tmp_path, pi4_bundle, ssid):
    src = make_pi_image(tmp_path / "bookworm.img", cloud_init=False)
    keys = [key_line(c) for c in KEY_COMMENTS]
    (tmp_path / "key.pub").write_text("\n".join(keys) + "\n")
    password = "pa'ss\"w$(reboot)`id`#☕"
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
        "--hostname=cam-7",
        "--user=alice",
        "--ssh-key",
        str(tmp_path / "key.pub"),
        f"--wifi-ssid={ssid}",
        "--wifi-country=fr",
        "--user-password-file",
        str(_password_file(tmp_path, password)),
        env={"EDGEPOSE_WIFI_PASSWORD": PASSPHRASE},
    )
    assert r.returncode == 0, r.stderr.decode()
    script = fat_read(out, "firstrun.sh").decode()
    got = check_firstrun(
        script, tmp_path, hostname="cam-7", ssid=ssid, psk=wpa_psk(ssid, PASSPHRASE), country="FR", keys=keys
    )
    (userconf,) = [ln for ln in script.splitlines() if ln.strip().startswith("/usr/lib/userconf-pi/userconf ")]
    name, crypt = shlex.split(userconf)[1:]
    assert name == "alice"
    _verify_crypt(crypt, password)
    assert got["chpasswd"] == f":{crypt}\n"  # no user 1000 in the scratch /etc, so FIRSTUSER is empty
