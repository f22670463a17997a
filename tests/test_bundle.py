"""`edgepose bundle`: a real bundle (real aarch64 wheels from PyPI, cached) checked file by file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

from edgepose.profiles import read_toml
from edgepose.provision.bundle import MANIFEST, open_bundle, verify_manifest
from edgepose.provision.wheels import TARGETS, BundleError, runtime_requirements
from tests.conftest import REPO, SHARED
from tests.procs import edgepose

FW = REPO / "firmware_configs"
DEVICE = FW / "device.toml"
PYPROJECT = REPO / "pyproject.toml"


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return edgepose(*args, cwd=cwd, timeout=600)


def runtime_names(python: str = "3.11") -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in runtime_requirements(PYPROJECT, TARGETS[python])}


def test_runtime_requirements_follow_pyproject_markers(tmp_path):
    pp = tmp_path / "pyproject.toml"
    pp.write_text(
        '[project]\nname = "x"\ndependencies = [\n'
        '  "numpy>=1.23",\n'
        "  \"tomli>=2; python_version < '3.11'\",\n"
        "  \"only313; python_version >= '3.13'\",\n"
        "  \"winonly; sys_platform == 'win32'\",\n"
        "  \"x86only; platform_machine == 'x86_64'\",\n"
        "  \"armonly>=1; platform_machine == 'aarch64' and platform_system == 'Linux'\",\n"
        "]\n"
    )
    assert runtime_requirements(pp, TARGETS["3.11"]) == ["numpy>=1.23", "armonly>=1"]
    assert runtime_requirements(pp, TARGETS["3.13"]) == ["numpy>=1.23", "only313", "armonly>=1"]
    # the real pyproject: every runtime dependency that applies to a Pi, nothing else
    real = read_toml(PYPROJECT)["project"]["dependencies"]
    assert "tomli" not in runtime_names() and len(runtime_names()) == len(real) - 1


@pytest.mark.integration
def test_bundle_holds_every_runtime_wheel_for_aarch64(pi4_bundle):
    wheels = sorted((pi4_bundle / "wheels").glob("*.whl"))
    names = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheels}
    # resolved from pyproject.toml at bundle time, plus what those depend on
    assert runtime_names() <= names, runtime_names() - names
    for required in ("numpy", "opencv-python-headless", "ai-edge-litert", "paho-mqtt", "pydantic", "pydantic-core"):
        assert required in names
    for w in wheels:
        _, version, _, tags = parse_wheel_filename(w.name)
        assert all(t.platform == "any" or t.platform.endswith("aarch64") for t in tags), w.name
        assert all(
            t.interpreter in ("py3", "py2", "cp311", "cp37", "cp38", "cp39", "cp310") or t.interpreter.startswith("py3")
            for t in tags
        ), w.name
        if w.name.startswith("numpy-"):
            assert version.major == 1  # Bookworm's picamera2 needs numpy 1.x
        with zipfile.ZipFile(w) as z:
            assert z.testzip() is None, w.name
    (edge,) = (pi4_bundle / "dist").glob("edgepose-*.whl")
    with zipfile.ZipFile(edge) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert "edgepose/provision/bundle.py" in z.namelist()
        # One wheel for both sides: the converter's sources ride along, inert on the device, because
        # TensorFlow is only in the [convert] extra (checked below: no runtime requirement brings it).
        assert "edgepose_convert/api.py" in z.namelist()
    requires = {
        canonicalize_name(Requirement(ln.split(":", 1)[1]).name)
        for ln in meta.splitlines()
        if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    }
    assert requires - {"tomli"} == runtime_names()
    assert "tensorflow" not in requires and not [w for w in wheels if w.name.startswith("tensorflow")]


@pytest.mark.integration
@pytest.mark.parametrize(
    "python,fixture", [("3.11", "pi4_bundle"), ("3.13", "pi4_bundle_313")], ids=["bookworm-3.11", "trixie-3.13"]
)
def test_bundle_wheels_resolve_offline(python, fixture, request, tmp_path):
    """What first boot runs (pip --no-index --find-links wheels/ edgepose.whl), resolved for aarch64 without an index,
    for both Raspberry Pi OS releases: Bookworm (3.11) and Trixie (3.13, the current image)."""
    bundle = request.getfixturevalue(fixture)
    assert json.loads((bundle / "bundle.json").read_text())["python"] == python
    (edge,) = (bundle / "dist").glob("edgepose-*.whl")
    t = TARGETS[python]
    # pip checks a wheel's Requires-Python against the interpreter running it, whatever --python-version says
    # (pip 23); for another Python than this one the report's metadata is checked below instead.
    other = python != f"{sys.version_info.major}.{sys.version_info.minor}"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-index",
            "--find-links",
            str(bundle / "wheels"),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            t.python,
            *[a for p in t.platforms for a in ("--platform", p)],
            *(["--ignore-requires-python"] if other else []),
            "--target",
            str(tmp_path / "t"),
            "--report",
            str(tmp_path / "report.json"),
            str(edge),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())["install"]
    installed = {canonicalize_name(i["metadata"]["name"]) for i in report}
    assert {"edgepose"} | runtime_names(python) <= installed
    wrong = [
        i["metadata"]["name"]
        for i in report
        if not SpecifierSet(i["metadata"].get("requires_python") or "").contains(f"{python}.0")
    ]
    assert not wrong, f"wheels that refuse Python {python}: {wrong}"
    wheels = [w.name for w in (bundle / "wheels").glob("*.whl")]
    assert not [w for w in wheels if "-cp3" in w and f"-cp{python.replace('.', '')}-" not in w and "abi3" not in w], (
        wheels
    )


@pytest.mark.integration
def test_bundle_files_and_manifest(pi4_bundle, tmp_path):
    info = json.loads((pi4_bundle / "bundle.json").read_text())
    assert info["profile"] == "pi4" and info["python"] == "3.11"
    assert (pi4_bundle / "device.toml").read_bytes() == DEVICE.read_bytes()
    assert (pi4_bundle / "boards" / "pi4.toml").read_bytes() == (FW / "boards" / "pi4.toml").read_bytes()
    assert "EDGEPOSE_BOARD=pi4" in (pi4_bundle / "install.env").read_text().splitlines()
    assert (pi4_bundle / "rpi-image" / "firstboot.sh").read_bytes() == (FW / "rpi-image" / "firstboot.sh").read_bytes()
    assert (pi4_bundle / "systemd" / "edgepose.service").read_bytes() == (
        FW / "systemd" / "edgepose.service"
    ).read_bytes()
    # pi4 names posenet-353x481: the registry file, with the registry's sha256
    model = pi4_bundle / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite"
    assert info["models"] == [
        {
            "name": "coral/posenet_mobilenet_v1_075_353_481_quant",
            "path": "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite",
            "sha256": "d589f727ee72effba3e8211b04c284fc65fc0a22907c161e2d6c080244d5c264",
        }
    ]
    assert model.read_bytes() == (SHARED / "models" / "coral" / model.name).read_bytes()
    assert (pi4_bundle / "apt-packages.txt").read_text().split() == ["python3-venv", "python3-picamera2"]
    # the manifest lists every other file and `sha256sum -c` (what first boot runs) accepts it
    listed = verify_manifest(pi4_bundle)
    files = {p.relative_to(pi4_bundle).as_posix() for p in pi4_bundle.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(listed) == files
    r = subprocess.run(
        ["sha256sum", "--strict", "-c", MANIFEST], cwd=pi4_bundle, check=False, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout
    # one changed byte is found
    copy = tmp_path / "copy"
    shutil.copytree(pi4_bundle, copy)
    (copy / "device.toml").write_text((copy / "device.toml").read_text().replace("mqtt.local", "evil.example"))
    with pytest.raises(BundleError, match="device.toml is missing or does not match"):
        verify_manifest(copy)


@pytest.mark.integration
def test_bundle_as_tar_from_the_warm_cache(pi4_bundle, tmp_path):
    out = tmp_path / "b.tar"
    r = cli("bundle", "--profile", "pi4", "--config", str(DEVICE), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "%|" not in r.stderr, r.stderr  # a pipe, even without --no-progress: no bar
    assert f"bundle {out}: profile pi4, Python 3.11" in r.stdout
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert all(n == "edgepose" or n.startswith("edgepose/") for n in names)
    folder = open_bundle(out, tmp_path / "x")
    assert sorted(p.name for p in (folder / "wheels").iterdir()) == sorted(
        p.name for p in (pi4_bundle / "wheels").iterdir()
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


@pytest.mark.integration
def test_firstboot_installs_the_bundle_offline(pi4_bundle, tmp_path):
    """firstboot.sh (dry run) on the real bundle: manifest checked, pip --no-index from wheels/, models in the cache."""
    boot = tmp_path / "boot" / "edgepose"
    shutil.copytree(pi4_bundle, boot)
    (tmp_path / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    env = {
        **os.environ,
        "EDGEPOSE_ROOT": str(tmp_path / "root"),
        "EDGEPOSE_DRY_RUN": "1",
        "EDGEPOSE_PYTHON": sys.executable,
        "EDGEPOSE_DT_MODEL": str(tmp_path / "model"),
        "EDGEPOSE_USB_ROOT": str(tmp_path / "nousb"),
    }
    env.pop("EDGEPOSE_PIP_INDEX_URL", None)
    r = subprocess.run(
        ["bash", str(boot / "rpi-image" / "firstboot.sh")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "bundle verified" in r.stderr
    (pip,) = [c for c in r.stdout.splitlines() if "/opt/edgepose/venv/bin/pip install" in c]
    assert f"--no-index --find-links {boot}/wheels" in pip and re.search(
        r"/dist/edgepose-[\d.]+-py3-none-any\.whl$", pip
    )
    assert "--index-url" not in pip
    apt = [c for c in r.stdout.splitlines() if "apt-get install" in c]
    assert apt == [
        "+ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv python3-picamera2"
    ]
    # the numba code compiled into the service's cache as its user, before the unit starts
    steps = r.stdout.splitlines()
    warm = [i for i, c in enumerate(steps) if c.endswith("-m edgepose compile")]
    assert len(warm) == 1 and steps[warm[0]].startswith(
        "+ runuser -u edgepose -- env NUMBA_CACHE_DIR=/var/cache/edgepose/numba "
    )
    assert (
        warm[0]
        < steps.index("+ systemctl enable edgepose.service")
        < steps.index("+ systemctl restart edgepose.service")
    )
    root = tmp_path / "root"
    cached = root / "var" / "cache" / "edgepose" / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite"
    assert cached.read_bytes() == (boot / "models" / "coral" / cached.name).read_bytes()
    assert (root / "etc" / "edgepose" / "board.toml").read_bytes() == (FW / "boards" / "pi4.toml").read_bytes()
    # a corrupt card stops before anything is installed
    (root / "var" / "lib" / "edgepose" / ".provisioned").unlink()
    with open(boot / "wheels" / min(os.listdir(boot / "wheels")), "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    r = subprocess.run(
        ["bash", str(boot / "rpi-image" / "firstboot.sh")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 1 and "do not match MANIFEST.sha256" in r.stderr and "pip install" not in r.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    "args, message",
    [
        (["--profile", "pi6"], "unknown board profile 'pi6'"),
        (["--config", "missing.toml"], "does not exist"),
        (["--config", "BAD"], "model.threads"),
        (["--python", "3.12"], "invalid choice"),
    ],
    ids=["unknown-profile", "missing-config", "invalid-config", "python"],
)
def test_bundle_bad_input(tmp_path, args, message):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nthreads = 0\n")
    base = {"--profile": "pi4", "--config": str(DEVICE), "--out": str(tmp_path / "out")}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = str(bad) if v == "BAD" else v
    r = cli("bundle", *[x for kv in base.items() for x in kv], "--no-progress", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if args[0] != "--python":
        assert len(lines) == 1 and lines[0].startswith("edgepose bundle: error:")
    if args[1] == "pi6":
        assert "pi4" in r.stderr and "pi5" in r.stderr  # the known profiles are listed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # nothing written
