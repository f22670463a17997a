"""Board profiles: partial device configs with the right model size, threads and camera mode per board.

A profile (``firmware_configs/boards/<name>.toml``) is an ordinary config
file that sets only what depends on the hardware. The config a device runs is
built in layers, later ones winning key by key:

1. edgepose's built-in defaults,
2. the board profile: ``board=`` / ``$EDGEPOSE_BOARD`` (a name or a path), else
   ``board.toml`` next to the device config (provisioning puts it there),
3. the device config (``/etc/edgepose/device.toml``): site settings,
4. command-line overrides.

``edgepose profiles detect`` (``python -m edgepose.profiles detect`` in firstboot.sh) names
the profile for the board it runs on (from ``/proc/device-tree/model`` and the
USB ids of a Coral accelerator); ``list``, ``show NAME`` and ``merged
DEVICE.toml`` help check a set-up.
"""

from __future__ import annotations

import copy
import difflib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .compat import tomllib
from .errors import ConfigError

#: File next to the device config that holds the board profile chosen at provisioning.
BOARD_FILE = "board.toml"
#: USB vendor:product ids of the Coral USB Accelerator (before / after its firmware is loaded).
CORAL_USB_IDS = frozenset({"1a6e:089a", "18d1:9302"})


def profile_dirs() -> list[Path]:
    """Where named profiles are looked up, first match wins."""
    dirs = []
    env = os.environ.get("EDGEPOSE_BOARDS_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(Path("/etc/edgepose/boards"))
    # A source checkout or editable install: the repository's firmware_configs/.
    dirs.append(Path(__file__).resolve().parents[1] / "firmware_configs" / "boards")
    dirs.append(Path(sys.prefix) / "share" / "edgepose" / "boards")
    return dirs


def list_profiles() -> dict[str, Path]:
    """Profile name -> file, over all :func:`profile_dirs` (earlier directories win)."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.toml")):
                found.setdefault(f.stem, f)
    return found


def profile_description(path: Path) -> str:
    """The profile's first comment line (its one-line summary)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def find_profile(board: str | Path) -> Path:
    """A profile file from a name (``pi5``) or a path; :class:`ConfigError` with close names otherwise."""
    p = Path(board)
    if p.suffix == ".toml" or os.sep in str(board):
        if p.is_file():
            return p
        raise ConfigError(
            f"board profile {p} does not exist.", "pass a profile name (edgepose profiles list) or an existing file."
        )
    profiles = list_profiles()
    if str(board) in profiles:
        return profiles[str(board)]
    close = difflib.get_close_matches(str(board), list(profiles), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"unknown board profile {board!r}.",
        f"{hint}known profiles: {', '.join(sorted(profiles)) or '(none found)'}; they are searched in "
        f"{', '.join(str(d) for d in profile_dirs())}.",
    )


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is one :class:`ConfigError` (every config read goes here)."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {p} does not exist.", "pass the path of a TOML file, e.g. firmware_configs/device.toml."
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}.", "fix the syntax at that line.") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p} is not UTF-8 text (byte {e.start}).", "save the config as UTF-8 (TOML files are UTF-8)."
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{p} is a directory, not a config file.",
            "pass the path of a TOML file, e.g. firmware_configs/device.toml.",
        ) from None
    except OSError as e:
        raise ConfigError(
            f"cannot read the config file {p}: {e.strerror or e}.", "check the path and its permissions."
        ) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: tables merge key by key, everything else (lists too) is replaced."""
    out = copy.deepcopy(dict(base))
    for key, val in override.items():
        if isinstance(val, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def resolve_board(device_path: str | Path | None, board: str | Path | None = None) -> Path | None:
    """The profile file for a device: explicit, ``$EDGEPOSE_BOARD``, or ``board.toml`` beside the device config."""
    chosen = board or os.environ.get("EDGEPOSE_BOARD") or None
    if chosen:
        return find_profile(chosen)
    if device_path is not None:
        beside = Path(device_path).parent / BOARD_FILE
        if beside.is_file():
            return beside
    return None


def merged_data(
    device_path: str | Path | None = None,
    board: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    check: Callable[[dict[str, Any], str], object] | None = None,
) -> tuple[dict[str, Any], str]:
    """The layered config as plain data, and a name for error messages. ``check(profile, name)`` sees the
    board profile alone first (``edgepose.config.validate``: a broken profile is reported as such)."""
    data: dict[str, Any] = {}
    names = []
    profile = resolve_board(device_path, board)
    if profile is not None:
        prof = read_toml(profile)
        if check is not None:
            check(prof, f"board profile {profile}")
        data = deep_merge(data, prof)
        names.append(f"board profile {profile}")
    if device_path is not None:
        data = deep_merge(data, read_toml(device_path))
        names.insert(0, str(device_path))
    if overrides:
        data = deep_merge(data, overrides)
    name = " over ".join(names) if names else "config"
    return data, name


# -- board detection -----------------------------------------------------------------


def detect_board(model: str | None, usb_ids: Iterable[str] = ()) -> str:
    """Profile name for a device-tree model string and the USB ``vendor:product`` ids present."""
    m = (model or "").replace("\x00", "").strip().lower()
    coral_usb = any(i.lower() in CORAL_USB_IDS for i in usb_ids)
    if "phanbook" in m or "coral" in m:  # Coral Dev Board: "Freescale i.MX8MQ Phanbook"
        return "coral-dev-board"
    if "raspberry pi" in m or "compute module" in m:
        if coral_usb and (
            "raspberry pi 4" in m or "raspberry pi 5" in m or "compute module 4" in m or "raspberry pi 400" in m
        ):
            return "pi4-coral-usb"
        if "raspberry pi 5" in m or "compute module 5" in m or "raspberry pi 500" in m:
            return "pi5"
        if "raspberry pi 4" in m or "compute module 4" in m or "raspberry pi 400" in m:
            return "pi4"
        if "zero 2" in m:
            return "pi-zero-2w"
    return "generic-arm64"


def read_device_model(path: str | Path = "/proc/device-tree/model") -> str | None:
    try:
        return Path(path).read_bytes().decode("utf-8", "replace").replace("\x00", "")
    except OSError:
        return None


def read_usb_ids(root: str | Path = "/sys/bus/usb/devices") -> list[str]:
    ids = []
    for dev in Path(root).glob("*"):
        try:
            ids.append(f"{(dev / 'idVendor').read_text().strip()}:{(dev / 'idProduct').read_text().strip()}")
        except OSError:
            continue
    return ids


if __name__ == "__main__":  # pragma: no cover
    # `python -m edgepose.profiles` is `edgepose profiles` for firmware_configs/rpi-image/firstboot.sh,
    # which runs it with the venv's Python (detect, then merged to validate the config).
    from .cli.profiles import main

    sys.exit(main(prog="python -m edgepose.profiles"))
