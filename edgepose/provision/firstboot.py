"""What a first boot reads from the boot partition: cloud-init files or Imager's firstrun.sh, and config.txt.

Current Raspberry Pi OS images boot with cloud-init (NoCloud: ``user-data``,
``network-config``, ``meta-data`` on the boot partition); our keys are merged into
the files the image already has. Bookworm images without cloud-init are customised
the way Raspberry Pi Imager 1.x does it: a ``firstrun.sh`` started once by
``systemd.run=`` on the kernel command line (``cmdline.txt``). Either way the result
runs ``edgepose/rpi-image/firstboot.sh`` (cloud-init's ``runcmd``, or the
``edgepose-firstboot.service`` unit that firstrun.sh enables, which waits for the network).
"""

from __future__ import annotations

import re
import secrets as _random
import shlex
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

CLOUD_INIT_FILES = ("user-data", "network-config", "meta-data")
FIRSTBOOT_CMD = [
    "bash",
    "-c",
    (
        'for d in /boot/firmware /boot; do f="$d/edgepose/rpi-image/firstboot.sh"; if [ -f "$f" ]; then exec bash "$f"; fi; done; '
        'echo "edgepose: firstboot.sh not found on the boot partition" >&2; exit 1'
    ),
]
#: Groups Raspberry Pi Imager gives the first user (camera: video; GPIO, I2C, SPI for HATs).
PI_GROUPS = "users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo"
CAMERAS = ("auto", "imx219", "imx477", "imx708", "none")
CMDLINE_RUN = (
    " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
)
SSH_ENABLE_CMD = ["systemctl", "enable", "--now", "ssh"]
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass
class Customisation:
    """What the card should know about its site. Secrets are hashes only (see secrets.py).

    :meth:`check` runs every validator again, so a library caller gets the CLI's refusals too.
    """

    hostname: str | None = None
    user: str = "pi"
    ssh_keys: list[str] = field(default_factory=list)
    password_hash: str | None = None
    wifi_ssid: str | None = None
    wifi_psk: str | None = None  # 64 hex
    wifi_country: str | None = None
    #: The service's secrets (``NAME=value``; the config names them by ``*_env``), for /etc/edgepose/edgepose.env.
    device_env: dict[str, str] = field(default_factory=dict)

    def check(self) -> Customisation:
        """Raise a :class:`ConfigError` for any value that cannot go into the generated files as it is."""
        if self.hostname is not None:
            check_hostname(self.hostname)
        check_user(self.user)
        if self.ssh_keys:
            check_ssh_key("\n".join(self.ssh_keys), "the SSH key list")
        if self.password_hash is not None and not CRYPT_RE.fullmatch(self.password_hash):
            raise ConfigError(
                "the user password hash is not a SHA-512 crypt string ($6$salt$hash).",
                "pass the password itself (edgepose flash hashes it).",
            )
        if self.wifi_ssid is not None:
            check_ssid_text(self.wifi_ssid)
            if self.wifi_psk is None or not PSK_RE.fullmatch(self.wifi_psk):
                raise ConfigError(
                    "the Wi-Fi PSK is not 64 hex digits.", "pass the passphrase (edgepose flash derives the PSK)."
                )
        if self.wifi_country is not None:
            check_country(self.wifi_country)
        return self


#: ``openssl passwd -6``: ``$6$`` [``rounds=N$``] salt ``$`` hash, all from crypt's ./0-9A-Za-z alphabet.
CRYPT_RE = re.compile(r"\$6\$(rounds=[0-9]+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}")
PSK_RE = re.compile(r"[0-9a-f]{64}")
#: An SSID written as ``ssid="..."`` in wpa_supplicant.conf; anything else is written as hex.
PLAIN_SSID_RE = re.compile(r"[A-Za-z0-9 _.+-]+")


def show(value: str, limit: int = 40) -> str:
    """``value`` for a one-line message: repr (newlines and control characters escaped), cut to ``limit`` characters."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def _controls(text: str) -> list[str]:
    """Control characters and Unicode line/paragraph separators in ``text`` (YAML and shells treat them as breaks)."""
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in "\x85\ufeff"]


def check_hostname(name: str) -> str:
    # fullmatch: '$' would also match before a trailing newline ('kitchen-cam\n').
    if not HOSTNAME_RE.fullmatch(name):
        raise ConfigError(
            f"host name {show(name)} is not valid.",
            "use ASCII letters, digits and '-', at most 63 characters, e.g. kitchen-cam.",
        )
    return name


def check_user(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name) or name == "root":
        raise ConfigError(
            f"user name {show(name)} is not valid.",
            "use a lower-case ASCII name of at most 32 characters such as pi (not root).",
        )
    return name


def check_country(cc: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", cc):
        raise ConfigError(
            f"Wi-Fi country {show(cc)} is not a two-letter ISO 3166 code.", "pass e.g. --wifi-country GB."
        )
    return cc.upper()


def check_ssid_text(ssid: str) -> bytes:
    """The SSID's UTF-8 bytes: 1 to 32 of them, no control characters (they cannot be typed on a phone either)."""
    try:
        raw = ssid.encode("utf-8")
    except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as surrogates
        raise ConfigError(
            "the Wi-Fi SSID is not valid UTF-8.", "pass the network's name as UTF-8 text with --wifi-ssid."
        ) from None
    if not 1 <= len(raw) <= 32:
        raise ConfigError(
            f"the Wi-Fi SSID is {len(raw)} bytes long; an SSID has 1 to 32 bytes (UTF-8).",
            "pass the network's exact name with --wifi-ssid.",
        )
    if _controls(ssid):
        raise ConfigError(
            f"the Wi-Fi SSID {show(ssid)} contains a control character or line break.",
            "pass the network's name as shown by your phone, on one line, with --wifi-ssid.",
        )
    return raw


#: An authorized_keys line: key type, base64 blob, optional comment (no options such as command=).
SSH_KEY_RE = re.compile(
    r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\x00-\x1f\x7f]*)?"
)


def check_ssh_key(text: str, source: str) -> list[str]:
    # Lines end at '\n' only: splitlines() would also cut at U+2028 or \x1c and hide a second key in a comment.
    keys = [ln.strip() for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    if not keys or not all(SSH_KEY_RE.fullmatch(k) and not _controls(k) for k in keys):
        raise ConfigError(
            f"{source} is not an SSH public key file (one key per line, no control characters).",
            "pass the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub.",
        )
    return keys


# --------------------------------------------------------------------------- cloud-init


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - in the [provision] extra
        raise ConfigError(
            "PyYAML is needed to edit cloud-init files.", "pip install pyyaml (the [provision] extra)."
        ) from None
    return yaml


def _load(text: bytes | None, name: str) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    yaml = _yaml()
    try:
        data = yaml.safe_load(text.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"the image's {name} is not valid YAML ({e}).", "use an unmodified Raspberry Pi OS image."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the image's {name} is not a YAML mapping.", "use an unmodified Raspberry Pi OS image.")
    return data


def _dump(data: dict[str, Any], header: str = "") -> bytes:
    return (header + _yaml().safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)).encode(
        "utf-8"
    )


def new_instance_id() -> str:
    """A cloud-init instance id unique to this flash: a new one makes cloud-init run first boot again."""
    return f"edgepose-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{_random.token_hex(3)}"


def user_data(existing: bytes | None, c: Customisation) -> bytes:
    """The image's user-data (if any) with our host name, user, SSH keys and the firstboot ``runcmd``.

    The user is the singular ``user:`` block, as Raspberry Pi Imager 2.x writes it: it renames and
    extends the distro's default user, keeping that user's groups (video for the camera, sudo, ...).
    """
    ud = _load(existing, "user-data")
    if c.hostname:
        ud["hostname"] = c.hostname
        ud["manage_etc_hosts"] = True
    runcmd = list(ud.get("runcmd") or [])
    if c.ssh_keys or c.password_hash:
        users = ud.get("users")
        if isinstance(users, list):
            # A second entry of the same name in `users:` would be created after ours and override it.
            kept = [u for u in users if not (isinstance(u, dict) and u.get("name") == c.user) and u != c.user]
            if kept:
                ud["users"] = kept
            else:
                del ud["users"]
        me: dict[str, Any] = {"name": c.user, "shell": "/bin/bash"}
        if c.password_hash:
            me["lock_passwd"] = False
            me["passwd"] = c.password_hash
        else:
            me["lock_passwd"] = True
        if c.ssh_keys:
            me["ssh_authorized_keys"] = list(c.ssh_keys)
        # Key-only login has no password to give sudo, so it gets sudo without one; with a password, sudo
        # asks for it (Imager's `sudo: null`: no rule of cloud-init's, the default user's sudo group stays).
        me["sudo"] = None if c.password_hash else "ALL=(ALL) NOPASSWD:ALL"
        ud["user"] = me
        ud["ssh_pwauth"] = bool(c.password_hash) and not c.ssh_keys
        if c.ssh_keys and SSH_ENABLE_CMD not in runcmd:
            runcmd.append(SSH_ENABLE_CMD)  # cloud-init writes the keys but never enables sshd; Pi OS ships it disabled
    ud.setdefault("manage_resolv_conf", False)  # NetworkManager/networkd own DNS, as Imager leaves it
    if FIRSTBOOT_CMD not in runcmd:
        runcmd.append(FIRSTBOOT_CMD)
    ud["runcmd"] = runcmd
    ud.setdefault("final_message", "edgepose provisioning finished after $UPTIME s; check: systemctl status edgepose")
    return _dump(ud, "#cloud-config\n# edgepose flash merged its keys into this file (hostname, user, runcmd).\n")


def network_config(existing: bytes | None, c: Customisation) -> bytes | None:
    """netplan v2 with our Wi-Fi (the PSK, never the passphrase) merged into the image's; None: leave it.

    As Imager 2.x writes it: wired eth0 by DHCP beside the Wi-Fi (a network-config replaces the
    distro's default, which would otherwise drop Ethernet), and no ``renderer``: the OS's netplan
    default decides (NetworkManager on Raspberry Pi OS).
    """
    if not c.wifi_ssid:
        return None
    nc = _load(existing, "network-config")
    old = nc.get("network")
    net: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    net["version"] = 2
    ethernets = dict(net.get("ethernets") or {})
    ethernets.setdefault("eth0", {"dhcp4": True, "dhcp6": True, "optional": True})
    net["ethernets"] = ethernets
    wifis = {k: v for k, v in dict(net.get("wifis") or {}).items() if k != "renderer"}
    wifis["wlan0"] = {
        "dhcp4": True,
        "regulatory-domain": c.wifi_country or "GB",
        "access-points": {c.wifi_ssid: {"password": c.wifi_psk}},
        "optional": True,
    }
    net["wifis"] = wifis
    nc = {k: v for k, v in nc.items() if k != "network"}
    nc["network"] = net
    return _dump(nc, "# edgepose flash: Wi-Fi stored as the WPA PSK (64 hex), never the passphrase.\n")


def meta_data(existing: bytes | None, c: Customisation, instance_id: str) -> bytes:
    """meta-data with this flash's instance id (always new: a re-flashed card runs first boot again)."""
    md = _load(existing, "meta-data")
    md["instance-id"] = instance_id
    if c.hostname:
        md["local-hostname"] = c.hostname
    return _dump(md)


def cmdline_nocloud(existing: bytes | None, instance_id: str) -> bytes:
    """cmdline.txt with ``ds=nocloud;i=<instance id>`` (Imager 2.x): cloud-init validates its cache against it.

    Without it the NoCloud cache is thrown away on every boot (/run is a tmpfs) and the seed is
    searched for again. A previous flash's ``ds=`` word is replaced, so the line holds one.
    """
    if existing is None:
        raise ConfigError("the image has no cmdline.txt.", "use a Raspberry Pi OS image.")
    line = existing.decode("utf-8").strip().splitlines()[0] if existing.strip() else ""
    words = [w for w in line.split(" ") if w and not w.startswith("ds=nocloud")]
    return (" ".join(words + [f"ds=nocloud;i={instance_id}"]) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- Imager's firstrun.sh (Bookworm)


def _q(s: str) -> str:
    return shlex.quote(s)


def wpa_ssid(ssid: str) -> str:
    """The ``ssid=`` value of wpa_supplicant.conf: ``"name"`` when plain ASCII, else the UTF-8 bytes as hex (unquoted)."""
    raw = check_ssid_text(ssid)
    return f'"{ssid}"' if PLAIN_SSID_RE.fullmatch(ssid) else raw.hex()


def wpa_supplicant_lines(c: Customisation) -> list[str]:
    """wpa_supplicant.conf for the Wi-Fi of ``c`` (the PSK, never the passphrase)."""
    return [
        f"country={check_country(c.wifi_country or 'GB')}",
        "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev",
        "ap_scan=1",
        "update_config=1",
        "network={",
        f"\tssid={wpa_ssid(c.wifi_ssid or '')}",
        f"\tpsk={c.wifi_psk}",
        "}",
    ]


def firstrun_block(c: Customisation) -> str:
    """Imager 1.x's customisation steps (host name, SSH key, user, Wi-Fi) plus enabling our first-boot unit."""
    c.check()  # every value is checked here too: each one below is shell-quoted or from a checked alphabet
    lines = ["# --- edgepose flash ---"]
    if c.hostname:
        h = _q(c.hostname)
        lines += [
            'CURRENT_HOSTNAME=$(tr -d " \\t\\n\\r" < /etc/hostname)',
            "if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then",
            f"   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname {h}",
            "else",
            f"   echo {h} >/etc/hostname",
            f'   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t"{h}"/g" /etc/hosts',
            "fi",
        ]
    lines += ["FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)", "FIRSTUSERHOME=$(getent passwd 1000 | cut -d: -f6)"]
    if c.ssh_keys:
        keys = _q("\n".join(c.ssh_keys))
        lines += [
            "if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then",
            f"   /usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh -k {' '.join(_q(k) for k in c.ssh_keys)}",
            "else",
            '   install -o "$FIRSTUSER" -m 700 -d "$FIRSTUSERHOME/.ssh"',
            f'   install -o "$FIRSTUSER" -m 600 <(printf "%s\\n" {keys}) "$FIRSTUSERHOME/.ssh/authorized_keys"',
            "   echo 'PasswordAuthentication no' >>/etc/ssh/sshd_config",
            "   systemctl enable ssh",
            "fi",
        ]
    if c.ssh_keys or c.password_hash:
        # No password: '*' matches none, so only the SSH key logs in.
        h = _q(c.password_hash or "*")
        lines += [
            "if [ -f /usr/lib/userconf-pi/userconf ]; then",
            f"   /usr/lib/userconf-pi/userconf {_q(c.user)} {h}",
            "else",
            f'   echo "$FIRSTUSER:"{h} | chpasswd -e',
            f'   if [ "$FIRSTUSER" != {_q(c.user)} ]; then',
            f'      usermod -l {_q(c.user)} "$FIRSTUSER"',
            f"      usermod -m -d /home/{c.user} {_q(c.user)}",
            f'      groupmod -n {_q(c.user)} "$FIRSTUSER"',
            "   fi",
            "fi",
        ]
    if c.wifi_ssid and c.wifi_psk:
        ssid, cc = _q(c.wifi_ssid), _q(c.wifi_country or "GB")
        # imager_custom takes a hashed PSK unless given -p (plain passphrase).
        lines += [
            "if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then",
            f"   /usr/lib/raspberrypi-sys-mods/imager_custom set_wlan {ssid} {c.wifi_psk} {cc}",
            "else",
            # One printf with each line shell-quoted: no heredoc whose delimiter a value could end.
            "   printf '%s\\n' "
            + " ".join(_q(ln) for ln in wpa_supplicant_lines(c))
            + " >/etc/wpa_supplicant/wpa_supplicant.conf",
            "   chmod 600 /etc/wpa_supplicant/wpa_supplicant.conf",
            "   rfkill unblock wifi",
            '   for filename in /var/lib/systemd/rfkill/*:wlan ; do echo 0 > "$filename"; done',
            "fi",
        ]
    lines += [
        "# firstrun.sh runs before the network; the unit runs firstboot.sh once it is up.",
        "for d in /boot/firmware /boot; do",
        '   if [ -f "$d/edgepose/rpi-image/edgepose-firstboot.service" ]; then',
        '      install -m 0644 "$d/edgepose/rpi-image/edgepose-firstboot.service" /etc/systemd/system/edgepose-firstboot.service',
        "      systemctl enable edgepose-firstboot.service",
        "      break",
        "   fi",
        "done",
        "# --- end edgepose flash ---",
    ]
    return "\n".join(lines) + "\n"


def firstrun_sh(existing: bytes | None, c: Customisation) -> bytes:
    block = firstrun_block(c)
    if existing and b"edgepose flash" not in existing:
        # An Imager-written script: our block goes before its clean-up lines.
        text = existing.decode("utf-8")
        m = re.search(r"^rm -f /boot", text, re.MULTILINE)
        if m:
            return (text[: m.start()] + block + text[m.start() :]).encode("utf-8")
        text = re.sub(r"\nexit 0\s*$", "\n", text)
        return (text + block + "exit 0\n").encode("utf-8")
    return (
        "#!/bin/bash\n# Written by edgepose flash in the form of Raspberry Pi Imager's firstrun.sh; runs once.\nset +e\n\n"
        + block
        + "rm -f /boot/firmware/firstrun.sh /boot/firstrun.sh\n"
        + "sed -i 's| systemd.run.*||g' /boot/firmware/cmdline.txt 2>/dev/null || sed -i 's| systemd.run.*||g' /boot/cmdline.txt\n"
        + "exit 0\n"
    ).encode("utf-8")


def cmdline_txt(existing: bytes | None) -> bytes:
    if existing is None:
        raise ConfigError(
            "the image has no cmdline.txt, so firstrun.sh cannot be started.",
            "use a Raspberry Pi OS image, or --first-boot cloud-init.",
        )
    line = existing.decode("utf-8").strip().splitlines()[0] if existing.strip() else ""
    line = re.sub(r" systemd\.run.*$", "", line)
    return (line + CMDLINE_RUN + "\n").encode("utf-8")


# --------------------------------------------------------------------------- config.txt


def config_txt(existing: bytes, camera: str) -> bytes:
    """``config.txt`` with the camera lines for ``camera`` (auto-detect, or one sensor's overlay); nothing else changes."""
    if camera not in CAMERAS:
        raise ConfigError(f"unknown camera {camera!r}.", f"use one of {', '.join(CAMERAS)}.")
    text = existing.decode("utf-8")
    if camera == "none":
        return existing
    auto = "1" if camera == "auto" else "0"
    lines = text.splitlines()
    found = False
    for i, ln in enumerate(lines):
        if re.match(r"^\s*camera_auto_detect\s*=", ln):
            lines[i] = f"camera_auto_detect={auto}"
            found = True
    want = [] if found else [f"camera_auto_detect={auto}"]
    if camera != "auto" and not any(re.match(rf"^\s*dtoverlay\s*=\s*{camera}\b", ln) for ln in lines):
        want.append(f"dtoverlay={camera}")
    if want:
        last_section = next((ln.strip() for ln in reversed(lines) if re.match(r"^\s*\[.*\]\s*$", ln)), "[all]")
        if last_section != "[all]":
            want.insert(0, "[all]")
        lines += want
    return ("\n".join(lines) + "\n").encode("utf-8")
