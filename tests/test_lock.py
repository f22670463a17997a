"""Packaging that lasts: the SPDX licence on the oldest setuptools the bundle accepts, the build-requirement
check, and the one lock of the device's dependencies that edgepose bundle and Dockerfile.arm64 share."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest

from edgepose.compat import tomllib
from edgepose.provision.bundle import TARGETS, BundleError, build_edgepose_wheel
from edgepose.provision.lock import LOCK, check_locked_wheels, lock_text, locked_requirements, read_lock
from tests.conftest import REPO
from tests.venvs import cached_venv

BUILD_REQUIRES = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
#: The first release of the floor the bundle checks (setuptools>=77) that the index offers (77.0.0 was never published).
OLDEST_SETUPTOOLS = "77.0.1"


def test_licence_is_the_spdx_string_with_its_file():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert BUILD_REQUIRES == ["setuptools>=77"]  # 77: the first setuptools with PEP 639's license expressions


@pytest.mark.integration
def test_the_wheel_builds_with_the_spdx_licence_on_the_oldest_supported_setuptools(tmp_path):
    assert BUILD_REQUIRES == [f"setuptools>={OLDEST_SETUPTOOLS.split('.')[0]}"]
    py = cached_venv("setuptools-oldest", [f"setuptools=={OLDEST_SETUPTOOLS}"])
    have = subprocess.run(
        [str(py), "-c", "import setuptools; print(setuptools.__version__)"], capture_output=True, text=True, check=True
    ).stdout
    assert have.strip() == OLDEST_SETUPTOOLS
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "tests", "benchmarks"),
    )
    r = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(tmp_path / "w"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = (tmp_path / "w").glob("edgepose-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta.splitlines()


@pytest.mark.integration
def test_bundle_names_the_fix_when_setuptools_is_too_old(tmp_path):
    # A real Python with setuptools 68 (the old floor): the bundle's check, as edgepose bundle runs it there.
    py = cached_venv("setuptools-68", ["setuptools==68.2.2", "packaging>=23", "numpy<2"])
    code = (
        "import sys; from pathlib import Path; from edgepose.provision.lock import check_build_requirements\n"
        "from edgepose.errors import EdgeposeError\n"
        "try:\n check_build_requirements(Path(sys.argv[1]))\nexcept EdgeposeError as e:\n print(e); sys.exit(2)"
    )
    r = subprocess.run(
        [str(py), "-c", code, str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2, r.stderr
    (line,) = r.stdout.strip().splitlines()
    assert "needs setuptools>=77 (this Python has 68.2.2" in line and f"{py} -m pip install 'setuptools>=77'" in line
    # and setuptools 68 would indeed fail on the SPDX string: the check stops the bundle before that
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "tests", "benchmarks"),
    )
    r = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "w"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode != 0 and "license" in (r.stdout + r.stderr).lower()


@pytest.mark.parametrize("python", sorted(TARGETS))
def test_the_lock_pins_every_runtime_dependency_with_a_hash(python):
    pins = read_lock(REPO / LOCK, TARGETS[python])
    reqs = locked_requirements(REPO, TARGETS[python])  # raises when pyproject.toml asks for something the lock lacks
    assert len(reqs) == len(pins) >= 10
    assert all(len(h) == 64 for p in pins for h in p.hashes)
    if python == "3.11":
        assert next(p for p in pins if p.name == "numpy").version.startswith(
            "1."
        )  # Bookworm's numpy ABI (the target's numpy<2)


def test_the_lock_is_the_generated_text():
    pins = [p for t in TARGETS.values() for p in read_lock(REPO / LOCK, t)]
    assert (REPO / LOCK).read_text() == lock_text(pins), "run edgepose lock --write"


def test_a_stale_lock_is_one_line_naming_the_fix(tmp_path):
    (tmp_path / "firmware_configs").mkdir()
    shutil.copy(REPO / LOCK, tmp_path / LOCK)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "edgepose"\ndependencies = ["numpy>=3", "paho-mqtt>=2"]\n'
    )
    with pytest.raises(BundleError) as e:
        locked_requirements(tmp_path, TARGETS["3.11"])
    assert str(e.value).count("\n") == 0
    assert "asks for numpy>=3 and the lock pins 1." in str(e.value) and "edgepose lock --write" in str(e.value)


def test_edgepose_lock_checks_the_lock_against_pyproject_and_names_the_fix(tmp_path, capsys, monkeypatch):
    from edgepose.cli import main
    from edgepose.provision import wheels

    assert main(["lock"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [f"Python {t}" for t in TARGETS]
    assert all(line.endswith(" pins, consistent with pyproject.toml") for line in out)
    (tmp_path / "firmware_configs").mkdir()
    shutil.copy(REPO / LOCK, tmp_path / LOCK)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "edgepose"\ndependencies = ["numpy>=3", "paho-mqtt>=2"]\n'
    )
    monkeypatch.setattr(wheels, "source_root", lambda: tmp_path)  # a checkout whose pyproject.toml moved on
    assert main(["lock"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edgepose lock: error: {LOCK} is out of date: pyproject.toml asks for numpy>=3")
    assert "Fix: run `edgepose lock --write` and commit the lock." in err and err.count("\n") == 1


def test_a_wheel_that_is_not_the_locked_one_is_refused(tmp_path):
    pin = next(p for p in read_lock(REPO / LOCK, TARGETS["3.11"]) if p.name == "paho-mqtt")
    fake = tmp_path / f"paho_mqtt-{pin.version}-py3-none-any.whl"
    fake.write_bytes(b"not the wheel the lock hashed")
    with pytest.raises(
        BundleError, match=r"paho_mqtt-.* does not match the sha256 firmware_configs/requirements-device.lock lists"
    ):
        check_locked_wheels([fake], REPO, TARGETS["3.11"])


def test_the_bundle_wheel_carries_the_licence(tmp_path):
    wheel = build_edgepose_wheel(REPO, tmp_path)
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
