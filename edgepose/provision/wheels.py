"""Device targets and their wheels: which CPython and glibc a bundle is for, and pip's aarch64 download.

Shared by the bundle (edgepose/provision/bundle.py) and the dependency lock (lock.py), which both
resolve the same requirements for the same targets.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..compat import tomllib
from ..errors import EdgeposeError

log = logging.getLogger(__name__)


class BundleError(EdgeposeError):
    """A bundle that cannot be made or does not verify."""


@dataclass(frozen=True)
class Target:
    """A device OS the bundle is for: its Python, glibc (manylinux tags) and pins."""

    python: str
    release: str
    glibc: tuple[int, int]
    #: Pins for the resolver, to the numpy of the OS: on a Pi, python3-picamera2 brings apt's numpy
    #: (Bookworm 1.24, Trixie 2.2), its compiled helpers (simplejpeg, ...) need that ABI, and
    #: firstboot.sh pins the venv to it; so every bundled wheel must accept that numpy.
    constraints: tuple[str, ...] = ()

    @property
    def platforms(self) -> list[str]:
        """manylinux tags a wheel may carry and still run on this glibc (pip needs them listed)."""
        major, minor = self.glibc
        return ["manylinux2014_aarch64"] + [f"manylinux_{major}_{m}_aarch64" for m in range(17, minor + 1)]

    @property
    def tag(self) -> str:
        return f"linux_aarch64-cp{self.python.replace('.', '')}"

    def marker_environment(self) -> dict[str, str]:
        full = f"{self.python}.0"
        return {
            "python_version": self.python,
            "python_full_version": full,
            "implementation_version": full,
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "sys_platform": "linux",
            "platform_machine": "aarch64",
            "os_name": "posix",
            "extra": "",
        }


TARGETS: dict[str, Target] = {
    "3.11": Target("3.11", "Raspberry Pi OS Bookworm (Debian 12)", (2, 36), ("numpy<2",)),
    "3.13": Target("3.13", "Raspberry Pi OS Trixie (Debian 13)", (2, 41), ("numpy<2.3",)),
}
DEFAULT_PYTHON = "3.11"


# --------------------------------------------------------------------------- sources


def source_root() -> Path:
    """The checkout edgepose runs from (a bundle builds its wheel from it)."""
    root = Path(__file__).resolve().parents[2]
    try:
        name = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        name = None
    if name != "edgepose":
        raise BundleError(
            f"edgepose runs from {root}, which is not a source checkout (no edgepose pyproject.toml there).",
            "run `edgepose bundle` from a clone of the repository installed with `pip install -e .`.",
        )
    return root


def runtime_requirements(pyproject: Path, target: Target) -> list[str]:
    """``[project].dependencies`` whose markers hold on the target, markers stripped."""
    from packaging.requirements import InvalidRequirement, Requirement

    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("dependencies", [])
    env = target.marker_environment()
    out = []
    for spec in deps:
        try:
            req = Requirement(spec)
        except InvalidRequirement as e:  # pragma: no cover - pip would refuse the project too
            raise BundleError(
                f"{pyproject}: dependency {spec!r} is not a valid requirement ({e}).", "fix pyproject.toml."
            ) from None
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        req.marker = None
        out.append(str(req))
    return out


# --------------------------------------------------------------------------- wheels


def wheel_cache(target: Target) -> Path:
    from ..paths import wheels_dir

    return wheels_dir(target.tag)


_PIP_FILE = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(.+\.whl)\s*$")


def _run_pip(cmd: list[str], echo: Callable[[str], None] | None) -> tuple[int, list[str], str]:
    """Run pip, echoing its stdout lines as progress; returns (rc, stdout lines, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    # stderr is small (warnings); read it after stdout so neither pipe fills.
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        m = _PIP_FILE.match(line)
        if echo and m:
            echo(f"  wheel {Path(m.group(1).strip()).name}")
    err = proc.stderr.read()
    return proc.wait(), lines, err


def download_wheels(
    requirements: list[str], target: Target, *, refresh: bool = False, echo: Callable[[str], None] | None = None
) -> list[Path]:
    """aarch64 wheels for ``requirements`` and all they depend on, through the wheel cache."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename

    cache = wheel_cache(target)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="edgepose-constraints-", delete=False) as cf:
        cf.write("\n".join(target.constraints) + "\n")
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target.python,
        *[a for p in target.platforms for a in ("--platform", p)],
        "--constraint",
        cf.name,
        "--dest",
        str(cache),
    ]
    try:
        attempts: list[list[str]] = [] if refresh else [["--no-index", "--find-links", str(cache)]]
        attempts.append([])
        lines: list[str] = []
        rc, err = 1, ""
        for extra in attempts:
            if echo:
                echo("  resolving from the wheel cache" if extra else "  resolving from the package index")
            rc, lines, err = _run_pip([*base, *extra, *requirements], echo)
            if rc == 0:
                break
    finally:
        os.unlink(cf.name)
    if rc != 0:
        err_lines = [ln for ln in err.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(err_lines) if ln.startswith("ERROR")), err_lines[-1] if err_lines else "?")
        raise BundleError(
            f"pip could not get aarch64 wheels for Python {target.python}: {last.strip()}",
            "check the network (PyPI) and that every runtime dependency in pyproject.toml publishes "
            "manylinux aarch64 wheels (or pure-Python ones) for that Python.",
        )
    wheels = []
    for ln in lines:
        m = _PIP_FILE.match(ln)
        if m:
            p = Path(m.group(1).strip())
            wheels.append(p if p.is_absolute() else cache / p.name)
    wheels = sorted(set(wheels))
    got = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheels}
    missing = [r for r in requirements if canonicalize_name(Requirement(r).name) not in got]
    bad = [
        w.name
        for w in wheels
        if not all(t.platform == "any" or "aarch64" in t.platform for t in parse_wheel_filename(w.name)[3])
    ]
    if missing or bad:
        raise BundleError(
            f"pip's download lacks {', '.join(missing) or 'nothing'} and has non-aarch64 wheels {', '.join(bad) or 'none'}.",
            "run `edgepose bundle --refresh` to resolve again from the index.",
        )
    return wheels
