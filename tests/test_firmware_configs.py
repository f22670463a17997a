"""Device and provisioning files: board profiles, device.toml, systemd units, cloud-init, first boot, Dockerfile."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from edgepose.cli.profiles import main as profiles_main
from edgepose.config import EdgeposeConfig, load_config
from edgepose.errors import ConfigError
from edgepose.model import zoo
from edgepose.profiles import (
    deep_merge,
    detect_board,
    find_profile,
    list_profiles,
    profile_description,
    read_toml,
)
from edgepose.sources import resolve
from tests.conftest import REPO

FW = REPO / "firmware_configs"
BOARDS = FW / "boards"
DEVICE = FW / "device.toml"
UNIT = FW / "systemd" / "edgepose.service"
FIRSTBOOT = FW / "rpi-image" / "firstboot.sh"
DOCKERFILE = REPO / "Dockerfile.arm64"
EXPECTED_BOARDS = {
    "pi5",
    "pi4",
    "pi-zero-2w",
    "coral-dev-board",
    "pi4-coral-usb",
    "generic-arm64",
    "rk3588",
    "amlogic-a311d",
    "termux",
}
ALL_TOML = sorted(FW.rglob("*.toml"))


@pytest.fixture(autouse=True)
def _no_board_env(monkeypatch):
    monkeypatch.delenv("EDGEPOSE_BOARD", raising=False)
    monkeypatch.delenv("EDGEPOSE_BOARDS_DIR", raising=False)


# -- TOML configs ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_TOML, ids=[str(p.relative_to(FW)) for p in ALL_TOML])
def test_every_toml_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, EdgeposeConfig)


def test_board_profiles_present_and_described():
    found = {p.stem for p in BOARDS.glob("*.toml")}
    assert found == EXPECTED_BOARDS
    assert set(list_profiles()) >= EXPECTED_BOARDS
    for name in EXPECTED_BOARDS:
        assert len(profile_description(BOARDS / f"{name}.toml")) > 20


@pytest.mark.parametrize("name", sorted(EXPECTED_BOARDS))
def test_board_profile_contents(name):
    data = read_toml(BOARDS / f"{name}.toml")
    # Profiles only hold what depends on the hardware.
    assert set(data) <= {"model", "source", "decode"}, set(data)
    entry = zoo.lookup(data["model"]["path"])
    assert entry is not None, data["model"]["path"]
    edgetpu = data["model"].get("edgetpu", "auto")
    assert (entry.kind == "edgetpu") == (edgetpu == "on")
    assert 1 <= data["model"]["threads"] <= 4
    kind, _ = resolve(data["source"]["uri"])
    assert kind in ("picamera2", "camera") or (name == "termux" and kind == "stream")  # a phone's IP-camera app
    assert data["source"]["width"] * 3 == data["source"]["height"] * 4  # 4:3 like the models' inputs


def test_device_toml_has_every_section():
    data = read_toml(DEVICE)
    sections = {
        k
        for k, f in EdgeposeConfig.model_fields.items()
        if isinstance(f.default, object) and hasattr(f.annotation, "model_fields")
    }
    assert sections and sections <= set(data), sections - set(data)
    assert "device_id" in data


@pytest.mark.parametrize("name", sorted(EXPECTED_BOARDS))
def test_layering_profile_under_device_config(name):
    """Keys the profile sets survive (device.toml leaves them commented out); device keys win otherwise."""
    profile = read_toml(BOARDS / f"{name}.toml")
    device = read_toml(DEVICE)
    cfg = load_config(DEVICE, board=name).model_dump()
    for section, values in profile.items():
        for key, val in values.items():
            assert cfg[section][key] == val, (section, key)
    assert cfg["device_id"] == device["device_id"]
    assert cfg["mqtt"]["host"] == device["mqtt"]["host"]
    assert cfg["source"]["timeout_s"] == device["source"]["timeout_s"]


def test_board_file_beside_device_config_and_env(tmp_path, monkeypatch):
    shutil.copy(DEVICE, tmp_path / "device.toml")
    assert load_config(tmp_path / "device.toml").source.uri == "0"  # no profile: defaults
    shutil.copy(BOARDS / "pi-zero-2w.toml", tmp_path / "board.toml")
    cfg = load_config(tmp_path / "device.toml")
    assert cfg.model.threads == 3 and cfg.source.fps == 15.0
    monkeypatch.setenv("EDGEPOSE_BOARD", "pi5")  # the environment names another board
    assert load_config(tmp_path / "device.toml").model.path == "posenet-481x641"
    # device config wins over the profile; overrides win over both
    (tmp_path / "device.toml").write_text('device_id = "x"\n[model]\nthreads = 1\n')
    cfg = load_config(tmp_path / "device.toml", overrides={"source": {"fps": 5.0}})
    assert cfg.model.threads == 1 and cfg.model.path == "posenet-481x641" and cfg.source.fps == 5.0


def test_profile_errors(tmp_path):
    with pytest.raises(ConfigError) as e:
        find_profile("pi6")
    assert "unknown board profile 'pi6'" in e.value.problem and "pi5" in e.value.fix
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nthreads = 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(DEVICE, board=bad)
    assert f"board profile {bad}" in str(e.value) and "model.threads" in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(DEVICE, board=tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


def test_deep_merge():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    out = deep_merge(base, {"a": {"y": [3]}, "c": {"z": 1}})
    assert out == {"a": {"x": 1, "y": [3]}, "b": 1, "c": {"z": 1}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # inputs untouched


@pytest.mark.parametrize(
    "model, usb, board",
    [
        ("Raspberry Pi 5 Model B Rev 1.0\x00", [], "pi5"),
        ("Raspberry Pi 4 Model B Rev 1.4", ["1d6b:0003"], "pi4"),
        ("Raspberry Pi Compute Module 4 Rev 1.0", [], "pi4"),
        ("Raspberry Pi Zero 2 W Rev 1.0", [], "pi-zero-2w"),
        ("Raspberry Pi 4 Model B Rev 1.5", ["1a6e:089a"], "pi4-coral-usb"),
        ("Raspberry Pi 5 Model B Rev 1.0", ["18d1:9302"], "pi4-coral-usb"),
        ("Freescale i.MX8MQ Phanbook", [], "coral-dev-board"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", [], "generic-arm64"),
        (None, [], "generic-arm64"),
    ],
)
def test_detect_board(model, usb, board):
    assert detect_board(model, usb) == board


def test_profiles_cli(tmp_path):
    (tmp_path / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    dev = tmp_path / "usb" / "2-1"
    dev.mkdir(parents=True)
    (dev / "idVendor").write_text("18d1\n")
    (dev / "idProduct").write_text("9302\n")
    out = io.StringIO()
    with redirect_stdout(out):
        assert (
            profiles_main(["detect", "--model-file", str(tmp_path / "model"), "--usb-root", str(tmp_path / "usb")]) == 0
        )
    assert out.getvalue().strip() == "pi4-coral-usb"
    secret = tmp_path / "device.toml"
    secret.write_text('[mqtt]\nusername = "u"\npassword = "hunter2"\n')
    out = io.StringIO()
    with redirect_stdout(out):
        assert profiles_main(["merged", str(secret), "--board", "pi4"]) == 0
    assert "hunter2" not in out.getvalue()
    assert json.loads(out.getvalue())["model"]["path"] == "posenet-353x481"
    assert profiles_main(["show", "nope"]) == 2


# -- systemd -----------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: [Section], Key=Value (keys may repeat), # and ; comments."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            out.setdefault(section, {})
            continue
        assert section is not None and "=" in line, f"{path.name}: bad line {raw!r}"
        key, val = line.split("=", 1)
        out[section].setdefault(key.strip(), []).append(val.strip())
    return out


def test_service_unit_keys():
    u = parse_unit(UNIT)
    s = u["Service"]
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert one["Restart"] == "always"
    assert int(one["WatchdogSec"]) >= 10
    assert one["User"] == "edgepose" and one["Group"] == "edgepose"
    assert shlex.split(one["ExecStart"]) == [
        "/opt/edgepose/venv/bin/edgepose",
        "serve",
        "--config",
        "/etc/edgepose/device.toml",
    ]
    for key in (
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "CapabilityBoundingSet",
        "SystemCallFilter",
    ):
        assert key in s, key
    assert one["ProtectSystem"] == "strict" and one["StateDirectory"] == "edgepose"
    assert u["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in one.get("After", "") or "network-online.target" in u["Unit"]["After"][0]
    # serve's --config option exists (the unit would fail at start otherwise)
    serve = (REPO / "edgepose" / "cli" / "serve.py").read_text()
    assert '"--config"' in serve


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", [UNIT, FW / "rpi-image" / "edgepose-firstboot.service"], ids=lambda p: p.name)
def test_units_pass_systemd_analyze_verify(tmp_path, unit):
    # verify also checks that ExecStart's program exists: point it at /bin/true in a copy.
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", unit.read_text(), flags=re.M)
    copy = tmp_path / unit.name
    copy.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in r.stderr.splitlines() if unit.name in ln or "Unknown" in ln or "ignoring" in ln]
    assert r.returncode == 0 and not problems, r.stderr


# -- cloud-init ------------------------------------------------------------------------------


def test_cloud_init_files_parse():
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the cloud-init files")
    ud_text = (FW / "rpi-image" / "user-data").read_text()
    assert ud_text.splitlines()[0] == "#cloud-config"
    ud = yaml.safe_load(ud_text)
    assert isinstance(ud["runcmd"], list) and ud["runcmd"]
    script = " ".join(ud["runcmd"][0])
    assert "edgepose/rpi-image/firstboot.sh" in script
    # first boot installs only the apt packages the image lacks (firstboot.sh), so an offline boot works
    assert "packages" not in ud and not ud.get("package_update")
    net = yaml.safe_load((FW / "rpi-image" / "network-config").read_text())
    assert net["network"]["version"] == 2
    assert net["network"]["wifis"]["wlan0"]["access-points"]
    meta = yaml.safe_load((FW / "rpi-image" / "meta-data").read_text())
    assert meta["instance-id"]


# -- first boot ----------------------------------------------------------------------------------


def boot_folder(tmp_path: Path, wheel: bool = True) -> Path:
    """firmware_configs/ as the boot partition holds it (edgepose/), with a dist/ wheel and wheels/ like a bundle."""
    conf = tmp_path / "boot" / "edgepose"
    if not conf.exists():
        shutil.copytree(FW, conf)
        if wheel:
            (conf / "dist").mkdir()
            # The dry run only names the file in pip's command line; test_bundle.py installs real ones.
            (conf / "dist" / "edgepose-0.1.0-py3-none-any.whl").write_bytes(b"")
            (conf / "wheels").mkdir()
    return conf


def run_firstboot(
    tmp_path: Path, model: str, usb: list[str] = (), conf: Path | None = None, **env: str
) -> subprocess.CompletedProcess:
    conf = conf or boot_folder(tmp_path)
    (tmp_path / "model").write_bytes(model.encode() + b"\x00")
    usb_root = tmp_path / "usb"
    usb_root.mkdir(exist_ok=True)
    for i, vid_pid in enumerate(usb):
        d = usb_root / f"1-{i}"
        d.mkdir()
        v, p = vid_pid.split(":")
        (d / "idVendor").write_text(v)
        (d / "idProduct").write_text(p)
    e = {
        **os.environ,
        "EDGEPOSE_ROOT": str(tmp_path / "root"),
        "EDGEPOSE_DRY_RUN": "1",
        "EDGEPOSE_PYTHON": sys.executable,
        "EDGEPOSE_DT_MODEL": str(tmp_path / "model"),
        "EDGEPOSE_USB_ROOT": str(usb_root),
        **env,
    }
    return subprocess.run(
        ["bash", str(conf / "rpi-image" / "firstboot.sh")], capture_output=True, text=True, env=e, timeout=120
    )


@pytest.mark.integration
def test_firstboot_syntax():
    r = subprocess.run(["bash", "-n", str(FIRSTBOOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-S", "warning", str(FIRSTBOOT)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


@pytest.mark.integration
def test_firstboot_dry_run_on_pi5(tmp_path):
    r = run_firstboot(tmp_path, "Raspberry Pi 5 Model B Rev 1.0", EDGEPOSE_DEVICE_ID="kitchen cam")
    assert r.returncode == 0, r.stderr
    root = tmp_path / "root"
    cmds = r.stdout.splitlines()
    assert (
        "+ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv python3-pip python3-picamera2"
        in cmds
    )
    assert any(
        c.startswith("+ python3 -m venv --system-site-packages ") and c.endswith("/opt/edgepose/venv") for c in cmds
    )
    # the bundled wheel, offline: never "edgepose" by name from an index
    pip = [c for c in cmds if re.match(r"\+ \S+/opt/edgepose/venv/bin/pip install ", c)]
    assert (
        len(pip) == 1
        and "--no-index --find-links " in pip[0]
        and pip[0].endswith("/dist/edgepose-0.1.0-py3-none-any.whl")
    ), pip
    assert cmds[-2:] == ["+ systemctl enable edgepose.service", "+ systemctl restart edgepose.service"]
    assert any(c.startswith("+ useradd --system") and c.endswith(" edgepose") for c in cmds)
    etc = root / "etc" / "edgepose"
    assert (etc / "board.toml").read_text() == (BOARDS / "pi5.toml").read_text()
    assert (root / "etc" / "systemd" / "system" / "edgepose.service").read_text() == UNIT.read_text()
    assert {p.name for p in (etc / "boards").iterdir()} == {f"{b}.toml" for b in EXPECTED_BOARDS}
    cfg = load_config(etc / "device.toml")
    assert cfg.device_id == "kitchen-cam"  # sanitised to what device_id allows
    assert cfg.model.path == "posenet-481x641" and cfg.source.uri == "picamera2"
    assert (etc / "edgepose.env").exists()
    assert (root / "var" / "lib" / "edgepose" / ".provisioned").exists()
    # a second boot does nothing
    r2 = run_firstboot(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    assert r2.returncode == 0 and r2.stdout == "" and "already provisioned" in r2.stderr


def write_manifest(conf: Path) -> None:
    """A MANIFEST.sha256 over the bundle folder, as edgepose bundle writes it (firstboot.sh checks it)."""
    lines = [
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(conf)}"
        for f in sorted(conf.rglob("*"))
        if f.is_file() and f.name != "MANIFEST.sha256"
    ]
    (conf / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")


@pytest.mark.integration
def test_firstboot_again_after_a_reflash_keeps_state_and_local_edits(tmp_path):
    """A card flashed again (another bundle) provisions again; the state and a device.toml edited on the device stay."""
    conf = boot_folder(tmp_path)
    write_manifest(conf)
    pi4 = "Raspberry Pi 4 Model B Rev 1.5"
    assert run_firstboot(tmp_path, pi4, conf=conf).returncode == 0
    root = tmp_path / "root"
    etc, state = root / "etc" / "edgepose", root / "var" / "lib" / "edgepose"
    (state / "outbox.sqlite").write_bytes(b"events not yet delivered")
    assert "already provisioned with this bundle" in run_firstboot(tmp_path, pi4, conf=conf).stderr

    # flashed again with another config; the device's copy was never edited: the card's replaces it
    (conf / "device.toml").write_text(
        (conf / "device.toml").read_text().replace("poses_rate = 5.0", "poses_rate = 2.0")
    )
    write_manifest(conf)
    r = run_firstboot(tmp_path, pi4, conf=conf)
    assert r.returncode == 0, r.stderr
    assert (
        "provisioning again, keeping /var/lib/edgepose" in r.stderr and "replaced /etc/edgepose/device.toml" in r.stderr
    )
    assert load_config(etc / "device.toml").mqtt.poses_rate == 2.0
    pip = [c for c in r.stdout.splitlines() if "/opt/edgepose/venv/bin/pip install" in c]
    assert len(pip) == 2 and "--no-deps --force-reinstall" in pip[1]  # same version number, new build: really installed
    assert (state / "outbox.sqlite").read_bytes() == b"events not yet delivered"

    # edited on the device, then another flash: the edit stays, the card's config goes beside it
    edited = (etc / "device.toml").read_text() + "\n# tuned on site\n"
    (etc / "device.toml").write_text(edited)
    (conf / "device.toml").write_text(
        (conf / "device.toml").read_text().replace("poses_rate = 2.0", "poses_rate = 3.0")
    )
    write_manifest(conf)
    r = run_firstboot(tmp_path, pi4, conf=conf)
    assert r.returncode == 0, r.stderr
    assert (etc / "device.toml").read_text() == edited and "poses_rate = 3.0" in (etc / "device.toml.new").read_text()
    assert "changed on the device" in r.stderr


@pytest.mark.integration
def test_firstboot_moves_the_cards_secrets_into_the_service_environment(tmp_path):
    from edgepose.provision.secrets import env_file_text

    conf = boot_folder(tmp_path)
    etc = tmp_path / "root" / "etc" / "edgepose"
    etc.mkdir(parents=True)
    (etc / "edgepose.env").write_text("KEEP=1\nEDGEPOSE_MQTT_PASSWORD=old\n")
    card = tmp_path / "boot" / "edgepose-secrets.env"
    card.write_text(env_file_text({"EDGEPOSE_MQTT_PASSWORD": 'new "$pw`\\', "EDGEPOSE_HTTP_TOKEN": "t0k"}))
    r = run_firstboot(tmp_path, "Raspberry Pi 4 Model B Rev 1.5", conf=conf)
    assert r.returncode == 0, r.stderr
    assert not card.exists()  # off the boot partition, which every local user can read
    lines = (etc / "edgepose.env").read_text().splitlines()
    assert lines == ["KEEP=1", 'EDGEPOSE_MQTT_PASSWORD="new \\"\\$pw\\`\\\\"', 'EDGEPOSE_HTTP_TOKEN="t0k"']
    assert oct((etc / "edgepose.env").stat().st_mode & 0o777) == "0o640"


@pytest.mark.integration
def test_firstboot_without_a_bundle_needs_an_explicit_index(tmp_path):
    conf = boot_folder(tmp_path, wheel=False)
    r = run_firstboot(tmp_path, "Raspberry Pi 4 Model B Rev 1.5", conf=conf)
    assert r.returncode == 1 and "no edgepose wheel" in r.stderr
    assert (
        "pip install" not in r.stdout and not (tmp_path / "root" / "var" / "lib" / "edgepose" / ".provisioned").exists()
    )
    r = run_firstboot(
        tmp_path,
        "Raspberry Pi 4 Model B Rev 1.5",
        conf=conf,
        EDGEPOSE_PIP_INDEX_URL="https://pypi.example.org/simple",
        EDGEPOSE_PIP_SPEC="edgepose==0.1.0",
    )
    assert r.returncode == 0, r.stderr
    assert re.search(r"pip install .*--index-url https://pypi.example.org/simple .*edgepose==0.1.0$", r.stdout, re.M)


@pytest.mark.integration
def test_firstboot_coral_usb_and_existing_config(tmp_path):
    etc = tmp_path / "root" / "etc" / "edgepose"
    etc.mkdir(parents=True)
    (etc / "device.toml").write_text('device_id = "kept"\n')
    r = run_firstboot(tmp_path, "Raspberry Pi 4 Model B Rev 1.5", ["1a6e:089a"])
    assert r.returncode == 0, r.stderr
    assert (etc / "device.toml").read_text() == 'device_id = "kept"\n'
    assert (etc / "board.toml").read_text() == (BOARDS / "pi4-coral-usb.toml").read_text()
    assert (
        "coral-edgetpu-stable"
        in (tmp_path / "root" / "etc" / "apt" / "sources.list.d" / "coral-edgetpu.list").read_text()
    )
    assert "+ env DEBIAN_FRONTEND=noninteractive apt-get install -y libedgetpu1-std" in r.stdout.splitlines()


@pytest.mark.integration
def test_firstboot_generic_board_and_bad_config(tmp_path):
    etc = tmp_path / "root" / "etc" / "edgepose"
    etc.mkdir(parents=True)
    (etc / "device.toml").write_text("[model]\nthreads = 0\n")
    r = run_firstboot(tmp_path, "Pine64 RockPro64")
    assert r.returncode == 1
    assert "python3-picamera2" not in r.stdout  # not a Pi
    assert "model.threads" in r.stderr and "does not validate" in r.stderr
    assert not (tmp_path / "root" / "var" / "lib" / "edgepose" / ".provisioned").exists()
    assert "systemctl enable" not in r.stdout


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, args = buf.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def test_dockerfile_static():
    ins = dockerfile_instructions(DOCKERFILE)
    args = dict(a.split("=", 1) for i, a in ins if i == "ARG" and "=" in a)
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) == 2
    for f in froms:
        assert f.startswith("--platform=linux/arm64 ")
        image = f.split()[1].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
        assert image == "python:3.11-slim-bookworm"
    final = ins[max(i for i, (k, _) in enumerate(ins) if k == "FROM") :]
    kinds = [k for k, _ in final]
    user = [a for k, a in final if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["edgepose"]
    assert json.loads(dict(final)["CMD"]) == ["serve", "--config", "/etc/edgepose/device.toml"]
    assert "HEALTHCHECK" in kinds
    # every local COPY source exists; the healthcheck script is copied where HEALTHCHECK runs it
    copies = [a.split() for k, a in ins if k == "COPY" and not a.startswith("--from")]
    for parts in copies:
        for src in parts[:-1]:
            assert (REPO / src.rstrip("/")).exists(), src
    hc = dict(final)["HEALTHCHECK"]
    assert "/usr/local/lib/edgepose/healthcheck.py" in hc
    assert any(p[-1] == "/usr/local/lib/edgepose/healthcheck.py" for p in copies)
    # installs edgepose from pyproject (a wheel of the project), runtime deps only: no TensorFlow, no extras
    runs = " ".join(a for k, a in ins if k == "RUN")
    assert (
        "pip wheel" in runs
        and "--no-deps" in runs
        and re.search(r"pip install --no-deps /tmp/wheels/edgepose-\*\.whl", runs)
    )
    # the dependencies come from the same hash lock as edgepose bundle's, not from PyPI unpinned
    assert "pip install --require-hashes --only-binary=:all: -r /tmp/requirements-device.lock" in runs
    assert any(p[0] == "firmware_configs/requirements-device.lock" for p in copies)
    text = DOCKERFILE.read_text().lower()
    assert "tensorflow" not in text.replace("no tensorflow", "")
    assert not re.search(r"edgepose\S*\[", runs)  # no extras such as [convert]


def test_pyproject_runtime_deps_exclude_tensorflow():
    data = read_toml(REPO / "pyproject.toml")
    deps = " ".join(data["project"]["dependencies"]).lower()
    assert "tensorflow" not in deps
    assert "tensorflow" in " ".join(data["project"]["optional-dependencies"]["convert"]).lower()


def test_dockerignore_lets_copied_files_through():
    ignore = (REPO / "Dockerfile.arm64.dockerignore").read_text().splitlines()
    allowed = [ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")]
    for parts in (
        a.split() for k, a in dockerfile_instructions(DOCKERFILE) if k == "COPY" and not a.startswith("--from")
    ):
        for src in parts[:-1]:
            assert any(src.rstrip("/") == a or src.startswith(a + "/") for a in allowed), src


@pytest.mark.integration
def test_healthcheck_script(tmp_path):
    script = FW / "docker" / "healthcheck.py"
    health = tmp_path / "health"
    base = {**os.environ, "EDGEPOSE_HEALTH_FILE": str(health)}
    health.write_text("")
    assert subprocess.run([sys.executable, str(script)], env=base, capture_output=True).returncode == 0
    old = time.time() - 600
    os.utime(health, (old, old))
    r = subprocess.run([sys.executable, str(script)], env=base, capture_output=True, text=True)
    assert r.returncode == 1 and "old" in r.stdout
    health.unlink()
    # no health file: the main process must be edgepose and alive
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "edgepose", "serve"])
    try:
        env = {**base, "EDGEPOSE_HEALTH_PID": str(proc.pid)}
        assert subprocess.run([sys.executable, str(script)], env=env, capture_output=True).returncode == 0
        env["EDGEPOSE_HEALTH_PID"] = str(os.getpid())  # pytest: not edgepose
        r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
        assert r.returncode == 1 and "not edgepose" in r.stdout
    finally:
        proc.kill()
        proc.wait()


# -- runtime dependencies only (what the Docker image and the Pi venv install) ---------------------

#: Installed here for tests, conversion and training; blocked unless pyproject.toml makes them runtime dependencies.
_CANDIDATES = {
    "scipy": "scipy",
    "tensorflow": "tensorflow",
    "tf_keras": "tf-keras",
    "keras": "keras",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "yaml": "pyyaml",
    "jsonschema": "jsonschema",
    "pytest": "pytest",
    "pandas": "pandas",
    "torch": "torch",
    "norfair": "norfair",
    "jinja2": "jinja2",
}
_RUNTIME = " ".join(read_toml(REPO / "pyproject.toml")["project"]["dependencies"]).lower()
NOT_RUNTIME = tuple(mod for mod, dist in _CANDIDATES.items() if dist not in _RUNTIME)
BLOCKER = f"""
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_RUNTIME!r}:
            raise ImportError(name + " is not a runtime dependency of edgepose (see pyproject.toml)")
sys.meta_path.insert(0, _Blocker())
"""


def run_runtime_only(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.integration
def test_device_side_imports_with_runtime_dependencies_only():
    """The image installs pyproject's runtime dependencies only: the device modules must import without the rest."""
    mods = [
        "edgepose.config",
        "edgepose.profiles",
        "edgepose.sources",
        "edgepose.draw",
        "edgepose.sinks.video",
        "edgepose.pipeline",
        "edgepose.mqtt.sink",
        "edgepose.service.runner",
        "edgepose.model.posenet",
    ]
    r = run_runtime_only("import importlib\nfor m in " + repr(mods) + ":\n    importlib.import_module(m)\n")
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.integration
def test_container_command_runs_with_runtime_dependencies_only():
    """What the container's ENTRYPOINT + CMD start, with the image's config and a board profile."""
    r = run_runtime_only(
        "import os, sys\nos.environ['EDGEPOSE_BOARD'] = 'generic-arm64'\nfrom edgepose.cli.profiles import main\n"
        f"sys.exit(main(['merged', {str(DEVICE)!r}]))\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["source"]["uri"] == "0"
    r = run_runtime_only(
        f"import sys\nfrom edgepose.cli import main\nsys.exit(main(['serve', '--print-config', '--config', {str(DEVICE)!r}]))\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.integration
def test_docker_build_stage_makes_a_runtime_wheel(tmp_path):
    """The Dockerfile's build stage, replayed: a wheel from exactly what it COPYs, without TensorFlow."""
    ins = dockerfile_instructions(DOCKERFILE)
    first_from = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
    build_stage = ins[first_from[0] : first_from[1]]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for parts in (a.split() for k, a in build_stage if k == "COPY"):
        dest = parts[-1]
        for src in parts[:-1]:
            target = ctx / (Path(src).name if dest.endswith("/") or dest == "./" else dest)
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(REPO / src, target)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "w"),
            ".",
        ],
        cwd=ctx,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile

    (wheel,) = (tmp_path / "w").glob("edgepose-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for needed in ("edgepose/profiles.py", "edgepose/sources/__init__.py", "edgepose/draw.py", "edgepose/cli/serve.py"):
        assert needed in names, needed
    assert any(n.startswith("edgepose/schemas/") and n.endswith(".json") for n in names)
    runtime = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert runtime and not any("tensorflow" in ln.lower() for ln in runtime)
