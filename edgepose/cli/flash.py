"""``edgepose flash``: a stock Raspberry Pi OS image in, a card that boots into the service out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from ..provision.firstboot import CAMERAS
    from ..provision.flash import FIRST_BOOT
    from ..provision.wheels import DEFAULT_PYTHON, TARGETS

    p = sub.add_parser(
        "flash",
        help="customise a Raspberry Pi OS image (bundle, first boot, Wi-Fi, SSH) and optionally write it to a card",
        description="Copy a Raspberry Pi OS image (.img or .img.xz; the input is never modified), put the edgepose "
        "bundle into its boot partition as edgepose/, add the first-boot files (cloud-init or Imager's firstrun.sh), "
        "the camera lines of config.txt, and write the result to --out (and to a card with --write). "
        "The Wi-Fi passphrase comes from $EDGEPOSE_WIFI_PASSWORD, --wifi-password-file or a prompt, and is stored "
        "only as the WPA PSK; a user password from $EDGEPOSE_USER_PASSWORD or --user-password-file, stored as a "
        "SHA-512 crypt hash.",
    )
    p.add_argument("--image", required=True, help="Raspberry Pi OS image, .img or .img.xz")
    p.add_argument("--out", required=True, help="the customised image to write (made atomically)")
    p.add_argument("--profile", required=True, help="board profile (edgepose profiles list)")
    p.add_argument("--config", required=True, help="device config (TOML)")
    p.add_argument("--hostname", help="host name (default: the config's device_id when it is a valid host name)")
    p.add_argument("--user", default="pi", help="login user to create (default pi)")
    p.add_argument("--ssh-key", metavar="FILE", help="SSH public key file for the user (enables the SSH server)")
    p.add_argument("--user-password-file", metavar="FILE", help="file whose first line is the user's password")
    p.add_argument("--wifi-ssid", help="Wi-Fi network name")
    p.add_argument("--wifi-country", help="Wi-Fi regulatory country, two letters (needed with --wifi-ssid)")
    p.add_argument("--wifi-password-file", metavar="FILE", help="file whose first line is the Wi-Fi passphrase")
    p.add_argument(
        "--secrets",
        metavar="FILE",
        help="NAME=value lines for the service's environment (the config's *_env secrets: broker password, page token); "
        "first boot moves them to /etc/edgepose/edgepose.env",
    )
    p.add_argument("--bundle", help="a folder or .tar from `edgepose bundle` (default: made now)")
    p.add_argument(
        "--python",
        choices=sorted(TARGETS),
        help="device Python when the bundle is made now (default: 3.13 for images with cloud-init, "
        f"i.e. Trixie-based, else {DEFAULT_PYTHON} for Bookworm)",
    )
    p.add_argument(
        "--first-boot",
        default="auto",
        choices=FIRST_BOOT,
        help="cloud-init files or Imager's firstrun.sh (default: from what the image holds)",
    )
    p.add_argument(
        "--camera",
        default="auto",
        choices=CAMERAS,
        help="config.txt camera lines for a picamera2 profile: auto-detect or one sensor's dtoverlay",
    )
    p.add_argument(
        "--write", metavar="DEVICE", help="also write the result to this card (e.g. /dev/sdb), verified by read-back"
    )
    p.add_argument("--force", action="store_true", help="allow --write to a disk larger than 256 GB")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _custom(args: argparse.Namespace) -> Any:
    from ..errors import ConfigError
    from ..profiles import read_toml
    from ..provision import firstboot as fb
    from ..provision import secrets

    c = fb.Customisation(user=fb.check_user(args.user))
    if args.hostname is not None:  # --hostname '' is a mistake, not "use the default"
        c.hostname = fb.check_hostname(args.hostname)
    else:
        device_id = str(read_toml(args.config).get("device_id", "")) if Path(args.config).is_file() else ""
        if fb.HOSTNAME_RE.fullmatch(device_id):  # fullmatch: not 'cam\n'
            c.hostname = device_id
    if args.ssh_key is not None:
        text = secrets.read_text_file(args.ssh_key, "SSH public key", "--ssh-key")
        c.ssh_keys = fb.check_ssh_key(text, args.ssh_key)
    password = secrets.read_secret(
        secrets.USER_PASSWORD_ENV, args.user_password_file, None, "user password", "--user-password-file"
    )
    if password:
        c.password_hash = secrets.sha512_crypt(password)
    if args.wifi_ssid is not None:
        secrets.check_ssid(args.wifi_ssid)
        if not args.wifi_country:
            raise ConfigError(
                "--wifi-ssid needs --wifi-country (the Wi-Fi regulatory domain).", "add e.g. --wifi-country GB."
            )
        c.wifi_country = fb.check_country(args.wifi_country)
        phrase = secrets.read_secret(
            secrets.WIFI_ENV,
            args.wifi_password_file,
            f"Wi-Fi passphrase for {fb.show(args.wifi_ssid)}: ",
            "Wi-Fi passphrase",
            "--wifi-password-file",
        )
        if phrase is None:
            raise ConfigError(
                "no Wi-Fi passphrase given.",
                f"set {secrets.WIFI_ENV}, pass --wifi-password-file, or run in a terminal to be asked.",
            )
        c.wifi_ssid = args.wifi_ssid
        c.wifi_psk = secrets.wpa_psk(args.wifi_ssid, phrase)
        del phrase
    elif args.wifi_country or args.wifi_password_file:
        raise ConfigError("Wi-Fi settings given without --wifi-ssid.", "add --wifi-ssid NAME.")
    if args.secrets:
        c.device_env = secrets.read_env_file(args.secrets)
    return c.check()


def run(args: argparse.Namespace) -> int:
    from ..provision.flash import flash

    progress = False if args.no_progress else None  # None: bars on a terminal only
    custom = _custom(args)
    disk = None
    if args.write:
        from ..provision.disks import check_target, read_lsblk

        disk = check_target(read_lsblk(), args.write, force=args.force)  # refuse before any work
    res = flash(
        args.image,
        args.out,
        profile=args.profile,
        config=args.config,
        custom=custom,
        bundle=args.bundle,
        first_boot=args.first_boot,
        camera=args.camera,
        python=args.python,
        progress=progress,
    )
    print(
        f"image {res.out}: first boot via {res.mechanism}, bundle {res.bundle_bytes / 1e6:.1f} MB in the boot partition "
        f"as edgepose/, wrote {', '.join(res.written)} ({res.seconds:.1f} s)"
    )
    if not custom.ssh_keys and not custom.password_hash:
        # Not an error (the service needs no login), but a headless card without one cannot be reached.
        print(
            f"edgepose flash: warning: no --ssh-key and no user password: nobody can log in as {custom.user}; "
            "the service still installs and streams.",
            file=sys.stderr,
        )
    if args.write and disk is not None:
        from ..provision.disks import check_target, read_lsblk
        from ..provision.write import write_image

        check_target(read_lsblk(), args.write, image_size=res.out.stat().st_size, force=args.force)
        sha = write_image(res.out, disk.path if args.write == disk.path else args.write, progress=progress)
        print(f"wrote and verified {args.write} ({disk.label}): sha256 {sha}")
    return 0
