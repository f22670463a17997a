"""``edgepose flash``: a customised copy of a Raspberry Pi OS image, optionally written to a card.

The input is only read. The copy is made in a temporary file beside ``--out``
and renamed into place as the last step, so on any error there is no partial
``--out``. All edits go through mtools into the FAT boot partition of the copy.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..progress import bar as progress_bar
from . import firstboot as fb
from .bundle import BOOT_DIR, DEFAULT_PYTHON, INFO, checked_config, make_bundle, open_bundle
from .image import Fat, ImageError, copy_image, find_boot_partition

FIRST_BOOT = ("auto", "cloud-init", "firstrun")


@dataclass
class FlashResult:
    out: Path
    mechanism: str
    boot_offset: int
    bundle_bytes: int
    seconds: float
    written: list[str] = field(default_factory=list)


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def env_names(cfg: Any) -> list[str]:
    """The environment variables the config takes secrets from (``*_env`` fields of [mqtt] and [http])."""
    names = [cfg.mqtt.password_env, cfg.http.token_env, cfg.http.password_env]
    return [n for n in names if n]


def has_cloud_init(fat: Fat) -> bool:
    return bool(set(fat.listdir()) & set(fb.CLOUD_INIT_FILES))


def choose_mechanism(fat: Fat, requested: str) -> str:
    if requested not in FIRST_BOOT:
        raise ConfigError(f"unknown first-boot mechanism {requested!r}.", f"use one of {', '.join(FIRST_BOOT)}.")
    if requested != "auto":
        return requested
    return "cloud-init" if has_cloud_init(fat) else "firstrun"


def image_python(fat: Fat) -> str:
    """The Python of the image's OS: cloud-init on the boot partition came with Trixie (3.13); Bookworm has 3.11."""
    return "3.13" if has_cloud_init(fat) else DEFAULT_PYTHON


def flash(
    image: str | Path,
    out: str | Path,
    *,
    profile: str,
    config: str | Path,
    custom: fb.Customisation,
    bundle: str | Path | None = None,
    first_boot: str = "auto",
    camera: str = "auto",
    python: str | None = None,
    progress: bool | None = None,
) -> FlashResult:
    from ..profiles import find_profile

    t0 = time.monotonic()
    image, out = Path(image), Path(out)
    if not image.is_file():
        raise ImageError(
            f"image {image} does not exist.", "download Raspberry Pi OS (.img.xz) and pass its path to --image."
        )
    if out.exists() and out.resolve() == image.resolve():
        raise ImageError(
            "--out is the input image.", "write the customised copy to a new file; the input is never modified."
        )
    if first_boot not in FIRST_BOOT:
        raise ConfigError(f"unknown first-boot mechanism {first_boot!r}.", f"use one of {', '.join(FIRST_BOOT)}.")
    custom.check()  # a library caller's values are refused as the CLI's are, before any work
    profile_path = find_profile(profile)
    cfg = checked_config(Path(config), profile_path)
    missing = sorted(set(env_names(cfg)) - set(custom.device_env))
    if missing:
        # Not fatal: the site may add them on the device; but the service stops at its start without them.
        print(
            f"edgepose flash: warning: the config reads {', '.join(missing)} from the environment and --secrets does not "
            "set them; the service will not start until /etc/edgepose/edgepose.env has them.",
            file=sys.stderr,
        )
    if cfg.source.uri != "picamera2":
        camera = "none"  # a USB/network camera profile leaves config.txt alone
    if image.suffix != ".xz":
        find_boot_partition(image)  # a raw image is checked before it is copied
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    except OSError as e:
        raise ImageError(
            f"cannot write in {out.parent}: {e.strerror}.", "choose an --out in a folder you can write to."
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    work = tempfile.TemporaryDirectory(prefix="edgepose-flash-")
    try:
        # 1. the copy
        with progress_bar(image.stat().st_size, "copy image", progress=progress) as bar:
            copy_image(image, tmp, bar.update)
        part = find_boot_partition(tmp, name=str(image))
        fat = Fat(tmp, part)
        mechanism = choose_mechanism(fat, first_boot)
        # 2. the bundle
        guess = image_python(fat)
        if bundle is None:
            folder = Path(work.name) / BOOT_DIR
            make_bundle(profile_path, config, folder, python=python or guess, progress=progress)
        else:
            folder = open_bundle(bundle, Path(work.name))
            made_for = json.loads((folder / INFO).read_text(encoding="utf-8")).get("python")
            if made_for != (python or guess):
                # Wheels for another CPython do not install offline; the guess may be wrong, so warn only.
                print(
                    f"edgepose flash: warning: the bundle is for Python {made_for}, this image looks like Python "
                    f"{python or guess}; make it with `edgepose bundle --python {python or guess}` if first boot fails.",
                    file=sys.stderr,
                )
        need = _tree_bytes(folder)
        # An image flashed before holds a bundle that this one replaces (the copy's, never the input's).
        fat.remove_tree(BOOT_DIR)
        free = fat.free_bytes()
        if need > free:
            raise ImageError(
                f"the boot partition has {free / 1e6:.0f} MB free, the bundle needs {need / 1e6:.0f} MB.",
                "use a Raspberry Pi OS image (512 MB boot partition) or remove files from the bundle.",
            )
        written = []
        steps = progress_bar(3, "boot partition", "step", progress)
        with steps:
            steps.set_postfix_str("bundle")
            fat.put_tree(folder, BOOT_DIR)
            written.append(f"{BOOT_DIR}/")
            steps.update(1)
            # 3. first boot
            steps.set_postfix_str(mechanism)
            files: dict[str, bytes | None] = {}
            if mechanism == "cloud-init":
                files["user-data"] = fb.user_data(fat.read("user-data"), custom)
                files["network-config"] = fb.network_config(fat.read("network-config"), custom)
                instance = fb.new_instance_id()
                files["meta-data"] = fb.meta_data(fat.read("meta-data"), custom, instance)
                files["cmdline.txt"] = fb.cmdline_nocloud(fat.read("cmdline.txt"), instance)
            else:
                files["firstrun.sh"] = fb.firstrun_sh(fat.read("firstrun.sh"), custom)
                files["cmdline.txt"] = fb.cmdline_txt(fat.read("cmdline.txt"))
            if custom.device_env:
                # Outside the bundle (not in its manifest, never in a shared .tar); first boot moves it to /etc and deletes it.
                from .secrets import DEVICE_ENV_FILE, env_file_text

                files[DEVICE_ENV_FILE] = env_file_text(custom.device_env).encode("utf-8")
            if custom.ssh_keys:
                files["ssh"] = b""  # Raspberry Pi OS's sshswitch enables the SSH server when this file exists
            steps.update(1)
            # 4. camera
            steps.set_postfix_str("config.txt")
            current = fat.read("config.txt")
            if camera != "none" and current is not None:
                new = fb.config_txt(current, camera)
                if new != current:
                    files["config.txt"] = new
            for name, data in files.items():
                if data is not None:
                    fat.write(name, data)
                    written.append(name)
            steps.update(1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ImageError(
            f"writing {out} failed: {e.strerror or e} ({e.filename or out}).",
            "free disk space beside --out (the copy is as large as the image) or choose another folder.",
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        work.cleanup()
    return FlashResult(
        out=out,
        mechanism=mechanism,
        boot_offset=part.start,
        bundle_bytes=need,
        seconds=time.monotonic() - t0,
        written=written,
    )
