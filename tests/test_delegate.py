"""[model] delegate: any external TFLite delegate, loaded through the runtime's load_delegate.

There is no vendor NPU here: tests/fake_delegate/fake_delegate.c is built as a delegate library with the
plug-in entry points the real ones export (tflite_plugin_create_delegate / tflite_plugin_destroy_delegate);
the same library stands in for libedgetpu in tests/test_edgetpu_device.py. Its delegate claims no op, so poses
through it must equal the CPU run; on demand it fails as real ones do (at creation, or in Prepare).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.procs import edgepose

HERE = Path(__file__).resolve().parent
MODEL = SHARED / "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite"
IMAGE = SHARED / "images/test_couple.jpg"


@pytest.fixture
def fake_lib(fake_delegate: Path) -> Path:
    return fake_delegate / "libfake_npu_delegate.so"


def run(tmp_path: Path, model_toml: str, refuse: str = "") -> tuple[subprocess.CompletedProcess, list[str], list]:
    cfg = tmp_path / "device.toml"
    cfg.write_text("[model]\n" + model_toml)
    log, out = tmp_path / "delegate.log", tmp_path / "poses.jsonl"
    out.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    env = {"FAKE_DELEGATE_LOG": str(log), "FAKE_DELEGATE_REFUSE": refuse}
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
    people = [json.loads(line)["people"] for line in out.read_text().splitlines()] if out.exists() else []
    return r, (log.read_text().splitlines() if log.exists() else []), people


def keypoints(people: list) -> list:
    return [[person.get("keypoints"), person.get("score")] for frame in people for person in frame]


@pytest.fixture(scope="module")
def cpu_people(tmp_path_factory) -> list:
    r, _, people = run(tmp_path_factory.mktemp("cpu"), "")
    assert r.returncode == 0, r.stderr
    return people


@pytest.mark.integration
def test_the_delegate_gets_its_options_and_runs_the_model(fake_lib, tmp_path, cpu_people):
    r, log, people = run(
        tmp_path,
        f'delegate = "{fake_lib}"\ndelegate_options = {{ cache_dir = "/tmp/vx", priority = 2, fp16 = true }}\n',
    )
    assert r.returncode == 0, r.stderr
    # Options reach the plug-in as text, in the order written; then Prepare is called on the graph.
    assert log[:5] == ["option cache_dir=/tmp/vx", "option priority=2", "option fp16=true", "created", "prepare"]
    assert len(people) == 1 and len(people[0]) >= 2
    assert keypoints(people) == keypoints(cpu_people)  # the fake claims no op: the same poses as the CPU


@pytest.mark.integration
def test_a_delegate_that_fails_to_start_is_one_line_naming_it_and_the_fix(fake_lib, tmp_path):
    r, log, people = run(tmp_path, f'delegate = "{fake_lib}"\n', refuse="create")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "create refused" in log and not people
    assert str(fake_lib) in r.stderr and "model.delegate" in r.stderr and 'delegate_fallback = "cpu"' in r.stderr


@pytest.mark.integration
def test_a_missing_delegate_library_is_one_line(tmp_path):
    r, _, _ = run(tmp_path, 'delegate = "/usr/lib/libvx_delegate.so"\n')
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "/usr/lib/libvx_delegate.so (model.delegate) could not be opened" in r.stderr


@pytest.mark.integration
@pytest.mark.parametrize("refuse", ["create", "prepare"])
def test_fallback_cpu_runs_the_model_on_the_cpu_with_a_warning(fake_lib, tmp_path, cpu_people, refuse):
    r, log, people = run(tmp_path, f'delegate = "{fake_lib}"\ndelegate_fallback = "cpu"\n', refuse=refuse)
    assert r.returncode == 0, r.stderr
    assert f"{refuse} refused" in log
    assert "Running on the CPU instead" in r.stderr
    assert keypoints(people) == keypoints(cpu_people)


@pytest.mark.integration
def test_a_delegate_that_rejects_the_graph_fails_without_fallback(fake_lib, tmp_path):
    r, log, _ = run(tmp_path, f'delegate = "{fake_lib}"\n', refuse="prepare")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "prepare refused" in log and "could not run" in r.stderr and "delegate_fallback" in r.stderr


@pytest.mark.integration
def test_edge_tpu_and_another_delegate_are_refused_together(fake_lib, tmp_path):
    r, _, _ = run(tmp_path, f'edgetpu = "on"\ndelegate = "{fake_lib}"\n')
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "a model runs on one" in r.stderr


def test_delegate_options_take_scalars_only(tmp_path):
    from edgepose.config import load_config
    from edgepose.errors import ConfigError

    cfg = tmp_path / "device.toml"
    cfg.write_text('[model]\ndelegate = "libx.so"\ndelegate_options = { list = [1, 2] }\n')
    with pytest.raises(
        ConfigError,
        match=r"model.delegate_options: Value error, option 'list' is a list; delegate options are strings, numbers or true/false",
    ):
        load_config(cfg)
