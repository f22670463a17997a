"""Secrets for a card: they arrive without a command-line flag and leave only as hashes.

* Wi-Fi: the 64-hex WPA PSK, PBKDF2-HMAC-SHA1(passphrase, SSID, 4096 rounds, 32 bytes), exactly
  what ``wpa_passphrase`` and Raspberry Pi Imager write. The passphrase itself is never stored.
* A user password: a SHA-512 crypt hash (``$6$...``) made by ``openssl passwd -6 -stdin``. Python
  3.13 removed the ``crypt`` module; passlib has had no release since 2020, and Debian's openssl
  is on every machine that can run mtools, so the password goes to openssl on stdin (never argv).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError
from .firstboot import check_ssid_text as check_ssid_text

#: A secret file larger than this is not a password file (and /dev/zero must not fill the memory).
SECRET_FILE_MAX = 64 * 1024

WIFI_ENV = "EDGEPOSE_WIFI_PASSWORD"
USER_PASSWORD_ENV = "EDGEPOSE_USER_PASSWORD"


def check_ssid(ssid: str) -> bytes:
    """The SSID's UTF-8 bytes (1 to 32, no control characters); see :func:`firstboot.check_ssid_text`."""
    return check_ssid_text(ssid)


def check_passphrase(passphrase: str) -> None:
    # WPA2-Personal: 8..63 printable ASCII characters (IEEE 802.11i, H.4.1).
    if not 8 <= len(passphrase) <= 63 or not all(32 <= ord(c) <= 126 for c in passphrase):
        raise ConfigError(
            f"the Wi-Fi passphrase has {len(passphrase)} characters; WPA needs 8 to 63 printable ASCII characters.",
            f"set {WIFI_ENV} or --wifi-password-file to the network's passphrase.",
        )


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The 64-hex PSK for ``ssid``/``passphrase`` (both checked first)."""
    salt = check_ssid(ssid)
    check_passphrase(passphrase)
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode("ascii"), salt, 4096, 32).hex()


def read_text_file(file: str | Path, what: str, flag: str, limit: int = SECRET_FILE_MAX) -> str:
    """A small UTF-8 text file (a secret or a public key); one-line :class:`ConfigError` otherwise."""
    try:
        with open(Path(file).expanduser(), "rb") as f:
            data = f.read(limit + 1)  # bounded: --ssh-key /dev/zero must not hang or fill the memory
    except OSError as e:
        raise ConfigError(
            f"cannot read the {what} file {file}: {e.strerror}.", f"pass an existing file to {flag}."
        ) from None
    if len(data) > limit:
        raise ConfigError(
            f"the {what} file {file} is larger than {limit // 1024} KiB.", f"pass the right file to {flag}."
        )
    try:
        # utf-8-sig: Notepad's byte-order mark is not part of the password (it would be hashed in, silently).
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"the {what} file {file} is not UTF-8 text (byte {e.start}).", f"save it as UTF-8 and pass it to {flag}."
        ) from None


def check_secret_text(value: str, what: str, where: str) -> str:
    """A password as given: not empty, valid UTF-8, no control characters (a newline would cut it short on stdin)."""
    if value == "":
        raise ConfigError(f"the {what} from {where} is empty.", f"put the {what} in {where}, or leave it out.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # os.environ carries bytes that are not UTF-8 as surrogates
        raise ConfigError(f"the {what} from {where} is not valid UTF-8.", f"set {where} to UTF-8 text.") from None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        # Never shown: it is a secret.
        raise ConfigError(
            f"the {what} from {where} contains a control character (newline, tab, ...).",
            f"set {where} to the {what} alone, on one line.",
        )
    return value


def read_secret(env: str, file: str | Path | None, prompt: str | None, what: str, flag: str) -> str | None:
    """From a file (first line), the environment or a prompt on the terminal; ``None`` when none applies.

    A value that is given is checked (:func:`check_secret_text`): empty, non-UTF-8 or multi-line secrets are refused.
    """
    if file is not None:
        # The first line, split at '\n' only: splitlines() would also cut at \x0b, \x1c or U+2028 inside a password.
        first = read_text_file(file, what, flag).split("\n", 1)[0].removesuffix("\r")
        return check_secret_text(first, what, f"{flag} {file}")
    value = os.environ.get(env)
    if value is not None:
        return check_secret_text(value, what, f"${env}")
    if prompt is not None and sys.stdin.isatty():
        return check_secret_text(getpass.getpass(prompt), what, "the prompt")
    return None


def sha512_crypt(password: str) -> str:
    """``$6$salt$hash`` as ``chpasswd -e`` and cloud-init's ``passwd`` take it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("openssl is needed to hash the user password.", "install it (apt install openssl).")
    r = subprocess.run(
        [openssl, "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True, text=True, check=False
    )
    out = r.stdout.strip()
    if r.returncode != 0 or not out.startswith("$6$"):
        raise ConfigError(
            "openssl could not hash the user password.", "check `openssl passwd -6` works on this machine."
        )
    return out


# --------------------------------------------------------------------------- the service's environment

ENV_NAME_RE = r"[A-Za-z_][A-Za-z0-9_]*"
#: On the boot partition until first boot moves it into /etc/edgepose/edgepose.env (0640 root:edgepose).
DEVICE_ENV_FILE = "edgepose-secrets.env"


def read_env_file(path: str | Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, blank lines, optional matching quotes) for the service's environment.

    The values are the secrets the config names by ``*_env`` (broker password, page token); they
    reach the card as a file, never as flags. A value may hold any character but NUL and line breaks.
    """
    import re

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read the secrets file {path}: {e.strerror}.", "pass an existing NAME=value file to --secrets."
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"the secrets file {path} is not UTF-8 (byte {e.start}).", "save it as UTF-8 text.") from None
    env: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.fullmatch(rf"(?:export\s+)?({ENV_NAME_RE})=(.*)", s)
        if m is None:
            raise ConfigError(
                f"line {n} of the secrets file {path} is not NAME=value.",
                "write one variable a line, e.g. EDGEPOSE_MQTT_PASSWORD=... (names: letters, digits, _).",
            )
        name, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if "\0" in value or "\r" in value:
            raise ConfigError(
                f"{name} on line {n} of {path} holds a NUL or carriage return.", "remove it from the value."
            )
        env[name] = value
    return env


def env_file_text(env: dict[str, str]) -> str:
    """systemd ``EnvironmentFile`` lines: double-quoted, with the four characters systemd unescapes there escaped."""

    def q(v: str) -> str:
        return '"' + "".join("\\" + c if c in '"\\`$' else c for c in v) + '"'

    return "".join(f"{k}={q(v)}\n" for k, v in env.items())
