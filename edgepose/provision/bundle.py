"""``edgepose bundle``: everything a device needs to install edgepose offline, in one folder.

Layout (the folder becomes ``/boot/firmware/edgepose/`` on a card; a ``.tar``
holds the same files under ``edgepose/``)::

    device.toml  install.env  board profile in boards/  apt-packages.txt  bundle.json
    dist/edgepose-<version>-py3-none-any.whl      built from this checkout
    wheels/*.whl                                  aarch64 wheels of every runtime dependency
    models/<registry path>                        the model(s) the config names, sha256-checked
    systemd/edgepose.service  rpi-image/firstboot.sh ...
    MANIFEST.sha256                               ``sha256sum -c`` format, every other file

The runtime dependencies are the pins of ``firmware_configs/requirements-device.lock``
for the target (Linux aarch64, CPython 3.11 or 3.13), generated from ``pyproject.toml``
and checked against it at bundle time (edgepose/provision/lock.py), downloaded by
``pip download --only-binary=:all:`` for that platform and refused unless their sha256
is the lock's. Wheels are cached (``<edgepose cache>/wheels/<target>``) and a
bundle first resolves from the cache alone, so a repeated bundle needs no network.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError, first_line
from ..model.zoo import sha256_file
from ..progress import bar as progress_bar
from .wheels import DEFAULT_PYTHON, TARGETS, BundleError, Target, download_wheels, source_root

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.sha256"
INFO = "bundle.json"
APT_LIST = "apt-packages.txt"
#: Folder name of the bundle on the boot partition and inside a ``.tar``.
BOOT_DIR = "edgepose"


@dataclass
class BundleResult:
    path: Path
    profile: str
    python: str
    seconds: float
    size_bytes: int
    wheels: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    apt_packages: list[str] = field(default_factory=list)


def _locked(root: Path, target: Target) -> list[str]:
    """The pins of firmware_configs/requirements-device.lock for ``target``, after checking this Python can build the wheel."""
    from .lock import check_build_requirements, locked_requirements

    check_build_requirements(root / "pyproject.toml")
    return locked_requirements(root, target)


def _check_locked(wheels: list[Path], root: Path, target: Target) -> None:
    from .lock import check_locked_wheels

    check_locked_wheels(wheels, root, target)


def build_edgepose_wheel(root: Path, dest: Path) -> Path:
    """``pip wheel --no-deps`` of the checkout, built from a clean copy (no build/ left in the tree).

    The wheel carries the converter's sources too (``edgepose_convert``, inert without the
    ``[convert]`` extra's TensorFlow), exactly as Dockerfile.arm64 builds it: one wheel for both sides.
    """
    junk = shutil.ignore_patterns(
        ".git",
        ".venv",
        "venv",
        "build",
        "dist",
        "__pycache__",
        "*.egg-info",
        ".*_cache",
        "tests",
        "benchmarks",
        "node_modules",
        "*.pyc",
    )

    with tempfile.TemporaryDirectory(prefix="edgepose-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(root, src, ignore=junk, symlinks=True)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(dest),
                str(src),
            ],
            check=False,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    if r.returncode != 0:
        raise BundleError(
            f"building the edgepose wheel failed: {first_line(r.stderr, 400, default='?', last=True)}",
            "install the build requirements (`pip install setuptools wheel`) and check pyproject.toml.",
        )
    found = sorted(dest.glob("edgepose-*.whl"))
    if not found:  # pragma: no cover - pip reported success
        raise BundleError("pip wheel made no edgepose wheel.", "run `pip wheel --no-deps .` by hand to see why.")
    return found[-1]


# --------------------------------------------------------------------------- files


def write_manifest(folder: Path) -> Path:
    """``MANIFEST.sha256`` over every other file, in ``sha256sum -c`` format (first boot checks it so)."""
    rows = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rows.append(f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}")
    out = folder / MANIFEST
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def verify_manifest(folder: Path) -> list[str]:
    """Files listed in the manifest; :class:`BundleError` naming the first that is missing or differs."""
    man = folder / MANIFEST
    if not man.is_file():
        raise BundleError(
            f"{folder} has no {MANIFEST}: it is not an edgepose bundle.", "make one with `edgepose bundle`."
        )
    names = []
    for line in man.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, rel = line.partition("  ")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise BundleError(f"{man} names an unsafe path {rel!r}.", "make the bundle again with `edgepose bundle`.")
        p = folder / rel
        if not p.is_file() or sha256_file(p) != digest:
            raise BundleError(
                f"bundle file {rel} is missing or does not match {MANIFEST}.",
                "make the bundle again with `edgepose bundle`.",
            )
        names.append(rel)
    return names


def apt_packages(cfg: Any) -> list[str]:
    """Debian packages first boot needs that a stock Raspberry Pi OS Lite image may lack."""
    pkgs = ["python3-venv"]  # ensurepip's wheels: Lite images have python3 but not always venv
    if cfg.source.uri == "picamera2":
        pkgs.append("python3-picamera2")
    if cfg.model.edgetpu == "on":
        pkgs.append("libedgetpu1-std")  # from Coral's apt repository
    return pkgs


def _copy(src: Path, dest: Path, mode: int = 0o644) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, mode)


def _bundle_models(cfg: Any, dest: Path, progress: bool | None) -> tuple[list[str], list[dict[str, str]]]:
    """Registry models the config names, copied with their cache layout; a local path stays a device path."""
    from ..model import zoo

    names: list[str] = []
    rows: list[dict[str, str]] = []
    entry = zoo.lookup(cfg.model.path)
    if entry is None or entry.manifest:
        log.warning(
            "model.path %r is not a registry .tflite model; the device must hold that file itself", cfg.model.path
        )
        return names, rows
    zoo.fetch(entry.name, progress=progress)
    for f in entry.files:
        src = zoo.models_dir() / f.path
        _copy(src, dest / "models" / f.path)
        rows.append({"name": entry.name, "path": f"models/{f.path}", "sha256": sha256_file(src)})
    names.append(entry.name)
    return names, rows


# --------------------------------------------------------------------------- the bundle


def _resolve_profile(profile: str | Path) -> tuple[str, Path]:
    from ..profiles import find_profile

    path = find_profile(profile)
    return path.stem, path


def checked_config(config: Path, profile_path: Path) -> Any:
    """The device config layered over the profile, validated; a bad field is named with the fix."""
    from ..config import load_config

    if not config.is_file():
        raise ConfigError(
            f"device config {config} does not exist.",
            "pass --config with a TOML file, e.g. firmware_configs/device.toml.",
        )
    try:
        return load_config(config, board=profile_path)
    except ConfigError as e:
        if e.fix:
            raise
        raise ConfigError(
            e.problem.replace("\n", "; "),
            f"correct that field in {config} (check with: edgepose profiles merged {config} "
            f"--board {profile_path.stem}).",
        ) from None


def make_bundle(
    profile: str | Path,
    config: str | Path,
    out: str | Path,
    *,
    python: str = DEFAULT_PYTHON,
    refresh: bool = False,
    progress: bool | None = None,
) -> BundleResult:
    """Build the bundle into ``out`` (a folder, or a ``.tar``); nothing is left at ``out`` on failure."""
    t0 = time.monotonic()
    if python not in TARGETS:
        raise BundleError(f"no bundle target for Python {python}.", f"use --python {' or '.join(TARGETS)}.")
    target = TARGETS[python]
    out = Path(out)
    name, profile_path = _resolve_profile(profile)
    config = Path(config)
    cfg = checked_config(config, profile_path)
    as_tar = out.suffix == ".tar"
    _check_out(out, as_tar)
    root = source_root()
    fw = root / "firmware_configs"

    steps = ["edgepose wheel", "aarch64 wheels", "models", "configs", "manifest", "output"]
    bar = progress_bar(len(steps), "bundle", "step", progress, leave=True)
    # pip's lines are log lines, not a bar: only --no-progress silences them.
    echo = (lambda s: bar.write(s, file=sys.stderr)) if progress is not False else None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    except OSError as e:
        bar.close()
        raise BundleError(
            f"cannot write in {out.parent}: {e.strerror}.", "choose an --out in a folder you can write to."
        ) from None
    try:

        def step(i: int) -> None:
            bar.set_postfix_str(steps[i])
            if i:
                bar.update(1)

        step(0)
        reqs = _locked(root, target)
        wheel = build_edgepose_wheel(root, stage / "dist")
        step(1)
        wheels = download_wheels(reqs, target, refresh=refresh, echo=echo)
        _check_locked(wheels, root, target)
        for w in wheels:
            _copy(w, stage / "wheels" / w.name)
        step(2)
        model_names, model_rows = _bundle_models(cfg, stage, progress)
        step(3)
        for p in sorted((fw / "boards").glob("*.toml")):
            _copy(p, stage / "boards" / p.name)
        _copy(profile_path, stage / "boards" / f"{name}.toml")
        _copy(config, stage / "device.toml", 0o640)
        _copy(fw / "systemd" / "edgepose.service", stage / "systemd" / "edgepose.service")
        for p in sorted((fw / "rpi-image").iterdir()):
            if p.is_file():
                _copy(p, stage / "rpi-image" / p.name, 0o755 if p.suffix == ".sh" else 0o644)
        (stage / "install.env").write_text(
            "# Written by `edgepose bundle`; read by rpi-image/firstboot.sh (see install.env.example).\n"
            f"EDGEPOSE_BOARD={name}\n",
            encoding="utf-8",
        )
        apt = apt_packages(cfg)
        (stage / APT_LIST).write_text("\n".join(apt) + "\n", encoding="utf-8")
        from .. import __version__

        info = {
            "edgepose_version": __version__,
            "profile": name,
            "python": target.python,
            "target": f"{target.release}, linux aarch64, CPython {target.python}",
            "platforms": target.platforms,
            "constraints": list(target.constraints),
            "requirements": reqs,
            "edgepose_wheel": f"dist/{wheel.name}",
            "wheels": [f"wheels/{w.name}" for w in wheels],
            "models": model_rows,
            "model_path": cfg.model.path,
            "apt_packages": apt,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (stage / INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        step(4)
        write_manifest(stage)
        step(5)
        size = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())
        if as_tar:
            _write_tar(stage, out)
            shutil.rmtree(stage)
        else:
            _replace_dir(stage, out)
        bar.update(1)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise BundleError(
            f"writing the bundle failed: {e.strerror or e} ({e.filename or out}).",
            "free disk space (a bundle is 100-200 MB) or choose another --out.",
        ) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        bar.close()
    return BundleResult(
        path=out,
        profile=name,
        python=target.python,
        seconds=time.monotonic() - t0,
        size_bytes=size,
        wheels=[wheel.name] + [w.name for w in wheels],
        models=model_names,
        apt_packages=apt,
    )


def _is_bundle_dir(p: Path) -> bool:
    return (p / MANIFEST).is_file() or (p / INFO).is_file()


def _check_out(out: Path, as_tar: bool) -> None:
    if as_tar:
        if out.is_dir():
            raise BundleError(f"{out} is a folder.", "give a file name ending in .tar, or a folder name without .tar.")
        return
    if out.is_file():
        raise BundleError(f"{out} is a file.", "give a folder name (or FILE.tar for an archive).")
    if out.is_dir() and any(out.iterdir()) and not _is_bundle_dir(out):
        raise BundleError(
            f"{out} exists and is not an edgepose bundle.", "choose a new folder; an old bundle there is replaced."
        )


def _replace_dir(stage: Path, out: Path) -> None:
    """Move the finished folder into place; an old bundle there is replaced only now."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(stage, out)
    os.chmod(out, 0o755)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_tar(stage: Path, out: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for p in sorted(stage.rglob("*")):
                arc = f"{BOOT_DIR}/{p.relative_to(stage).as_posix()}"
                info = tar.gettarinfo(str(p), arcname=arc)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if p.is_file():
                    with open(p, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_bundle(path: str | Path, workdir: Path) -> Path:
    """A verified bundle folder from a folder or a ``.tar`` (extracted under ``workdir``)."""
    p = Path(path)
    if p.is_dir():
        verify_manifest(p)
        return p
    if not p.is_file():
        raise BundleError(f"bundle {p} does not exist.", "make one with `edgepose bundle`, or leave out --bundle.")
    try:
        with tarfile.open(p) as tar:
            members = _safe_members(tar.getmembers(), p)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and 3.11.4+): the safe extraction filter too
                tar.extractall(workdir, members=members, filter="data")
            else:  # pragma: no cover - members are checked above
                tar.extractall(workdir, members=members)
    except tarfile.TarError as e:
        raise BundleError(
            f"bundle {p} is not a readable tar ({e}).", "make it again with `edgepose bundle --out FILE.tar`."
        ) from None
    folder = workdir / BOOT_DIR
    verify_manifest(folder)
    return folder


def _safe_members(members: Iterable[tarfile.TarInfo], src: Path) -> list[tarfile.TarInfo]:
    out = []
    for m in members:
        pure = PurePosixPath(m.name)
        if pure.is_absolute() or ".." in pure.parts or not (m.isfile() or m.isdir()) or pure.parts[0] != BOOT_DIR:
            raise BundleError(
                f"bundle {src} holds an unexpected entry {m.name!r}.", "use a tar made by `edgepose bundle`."
            )
        out.append(m)
    return out
