"""The Edge TPU choice (model.edgetpu_device, as pycoral's make_interpreter(device=...)) reaches the delegate.

There is no Edge TPU here: tests/fake_delegate/fake_delegate.c, built as libedgetpu.so.1 (conftest's
``fake_delegate``), has the real library's external-delegate entry points and "device" option, and its
delegate leaves every op on the CPU. It is found the way the real one is (the dynamic loader's search path).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.procs import edgepose

HERE = Path(__file__).resolve().parent
MODEL = SHARED / "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite"
IMAGE = SHARED / "images/test_couple.jpg"


def run_with_tpu(fake_delegate: Path, tmp_path: Path, device: str | None, attached: str = "usb:0"):
    cfg = tmp_path / "device.toml"
    cfg.write_text('[model]\nedgetpu = "on"\n' + (f'edgetpu_device = "{device}"\n' if device else ""))
    log, out = tmp_path / "etpu.log", tmp_path / "poses.jsonl"
    env = {"LD_LIBRARY_PATH": str(fake_delegate), "FAKE_DELEGATE_LOG": str(log), "FAKE_DELEGATE_DEVICES": attached}
    r = edgepose(
        "run",
        "--config",
        str(cfg),
        "--model",
        str(MODEL),
        "--source",
        str(IMAGE),
        "--jsonl",
        str(out),
        "-q",
        env=env,
        timeout=120,
    )
    return r, (log.read_text().splitlines() if log.exists() else []), out


@pytest.mark.integration
@pytest.mark.parametrize("device", ["usb:0", "pci:1"])
def test_the_configured_edge_tpu_is_the_one_opened(fake_delegate, tmp_path, device):
    r, log, out = run_with_tpu(fake_delegate, tmp_path, device, attached=f"{device},usb:1")
    assert r.returncode == 0, r.stderr
    assert log[:2] == [f"option device={device}", "created"]
    people = [json.loads(line)["people"] for line in out.read_text().splitlines()]
    assert (
        len(people) == 1 and len(people[0]) >= 2
    )  # the test image's couple, run by the interpreter the delegate was given to


@pytest.mark.integration
def test_no_device_set_takes_any_edge_tpu(fake_delegate, tmp_path):
    r, log, _ = run_with_tpu(fake_delegate, tmp_path, None)
    assert r.returncode == 0, r.stderr
    assert log[0] == "created" and not any(line.startswith("option") for line in log)


@pytest.mark.integration
def test_an_edge_tpu_that_is_not_attached_is_one_line_naming_it(fake_delegate, tmp_path):
    r, log, _ = run_with_tpu(fake_delegate, tmp_path, "pci:0", attached="usb:0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        "'pci:0'" in r.stderr
        and "model.edgetpu_device" in r.stderr
        and "Failed to open device pci:0" in log
        and "created" not in log
    )


def test_a_malformed_device_name_is_refused_by_the_config(tmp_path):
    from edgepose.config import load_config
    from edgepose.errors import ConfigError

    cfg = tmp_path / "device.toml"
    cfg.write_text('[model]\nedgetpu_device = "usb0"\n')
    with pytest.raises(ConfigError, match=r"model.edgetpu_device: String should match pattern"):
        load_config(cfg)
