"""The fault corpus: every bad input through ``edgepose run`` and ``edgepose serve``, as a user runs them.

Each one must give one line naming the problem (``edgepose <cmd>: error: ...``), the right exit code, no
traceback and nothing half-written. Files in ``tests/faults/`` are the inputs (see its README); damaged
models are made at test time from the real model in ../shared, so nothing downloaded is committed.
Figures: ``.venv/bin/python -m pytest -q tests/test_faults.py`` (one test per input and command).
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.conftest_mqtt import TEST_IMAGE, TEST_MODEL
from tests.procs import edgepose

pytestmark = pytest.mark.integration  # every test here starts a broker, a browser or a subprocess

FAULTS = Path(__file__).resolve().parent / "faults"
GOOD_IMAGE = TEST_IMAGE
#: Lines every ``serve`` prints at the default level whatever happens (the start summary, the status line).
INFO_PREFIXES = ("edgepose serve: started:", "edgepose serve: status:")


MODEL_DAMAGES = ("truncated", "scrambled_tables", "header_only", "text", "empty")


def damaged_models(d: Path, write: bool = True) -> dict[str, Path]:
    """TFLite files with a valid ``TFL3`` header and damaged contents, derived from the real model."""
    if not write:
        return {name: d / f"{name}.tflite" for name in MODEL_DAMAGES}
    data = bytearray(TEST_MODEL.read_bytes())
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(6)
    scrambled = bytearray(data)
    for i in range(64, 4096):
        scrambled[i] = rng.randrange(256)
    out = {
        "truncated": bytes(data[: len(data) // 3]),
        "scrambled_tables": bytes(scrambled),
        "header_only": bytes(data[:64]),
        "text": b"this is not a model\n",
        "empty": b"",
    }
    paths = {}
    for name, content in out.items():
        p = d / f"{name}.tflite"
        p.write_bytes(content)
        paths[name] = p
    return paths


@dataclass
class Case:
    id: str
    run: list[str] | None  # arguments after `edgepose run`, None: not a run case
    serve_config: str | None  # extra TOML for serve's config, None: not a serve case
    serve_args: tuple[str, ...] = ()
    code: int = 2
    expect: str = ""
    fix: bool = True  # the one line also says the fix


def cases(tmp: Path, write: bool = True) -> list[Case]:
    models = damaged_models(tmp / "models", write)
    cfg = FAULTS / "configs"
    img = FAULTS / "images"
    rec = FAULTS / "recordings"
    folder = tmp / "folder"
    if write:
        folder.mkdir(exist_ok=True)
        for name in ("huge_header.png", "not_an_image.jpg", "empty.jpg"):
            (folder / name).write_bytes((img / name).read_bytes())
        (folder / "z_good.jpg").write_bytes(GOOD_IMAGE.read_bytes())
    out: list[Case] = [
        Case(
            "config-not-utf8",
            ["--config", str(cfg / "latin1.toml")],
            "@" + str(cfg / "latin1.toml"),
            expect="not UTF-8",
        ),
        Case("config-is-a-directory", ["--config", str(cfg)], "@" + str(cfg), expect="is a directory"),
        Case(
            "config-missing",
            ["--config", str(tmp / "nope.toml")],
            "@" + str(tmp / "nope.toml"),
            expect="does not exist",
        ),
        Case(
            "config-bad-syntax",
            ["--config", str(cfg / "bad_syntax.toml")],
            "@" + str(cfg / "bad_syntax.toml"),
            expect="not valid TOML",
        ),
        Case(
            "config-typo-key",
            ["--config", str(cfg / "typo_key.toml")],
            "@" + str(cfg / "typo_key.toml"),
            expect="did you mean 'host'",
            fix=False,
        ),
        Case(
            "config-wrong-type",
            ["--config", str(cfg / "wrong_type.toml")],
            "@" + str(cfg / "wrong_type.toml"),
            expect="mqtt.port",
            fix=False,
        ),
        Case(
            "config-bad-device-id",
            ["--config", str(cfg / "bad_device_id.toml")],
            "@" + str(cfg / "bad_device_id.toml"),
            expect="device_id",
            fix=False,
        ),
        Case(
            "config-missing-model",
            ["--config", str(cfg / "missing_model.toml")],
            "@" + str(cfg / "missing_model.toml"),
            expect="no model file",
        ),
    ]
    for name, path in models.items():
        out.append(Case(f"model-{name}", ["--model", str(path)], f'[model]\npath = "{path}"\n', expect="TFLite"))
    for name, expect in (
        ("huge_header.png", "larger than OpenCV reads"),
        ("not_an_image.jpg", "could not be read"),
        ("empty.jpg", "could not be read"),
        ("not_a_video.mp4", ""),
    ):
        p = img / name
        out.append(Case(f"source-{name}", ["--source", str(p)], f'[source]\nuri = "{p}"\n', expect=expect))
    out.append(
        Case(
            "source-folder-with-bad-files",
            ["--source", str(folder)],
            f'[source]\nuri = "{folder}"\n',
            code=0,
            expect="skipped 3 file(s)",
        )
    )
    for name, expect in (
        ("not_json.jsonl", "frame record"),
        ("empty.jsonl", "frames"),
        ("missing_fields.jsonl", "frame record"),
        ("missing.jsonl", "recording"),
    ):
        out.append(Case(f"replay-{name}", None, "", serve_args=("--replay", str(rec / name)), expect=expect))
    return out


def _check_one_line(cmd: str, case: Case, r: subprocess.CompletedProcess) -> None:
    err = r.stderr
    assert "Traceback" not in err, err[-3000:]
    assert r.returncode == case.code, (r.returncode, err[-3000:])
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(INFO_PREFIXES)]
    if case.code == 0:
        if case.expect and cmd == "run":
            assert case.expect in err, err
        return
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"edgepose {cmd}: error: "), lines
    assert case.expect in lines[0], lines
    if case.fix:
        assert "Fix:" in lines[0], lines


_CASE_IDS = [c.id for c in cases(Path("unused"), write=False)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the fault corpus derives damaged models from the real one")
    return {c.id: c for c in cases(tmp_path_factory.mktemp("faults"))}


@pytest.mark.parametrize("case_id", [i for i in _CASE_IDS if not i.startswith("replay-")])
def test_run_over_bad_input(corpus, case_id, tmp_path):
    case = corpus[case_id]
    assert case.run is not None
    args = ["run", *case.run, "--quiet"]
    if "--source" not in case.run:
        args += ["--source", str(GOOD_IMAGE)]
    if "--model" not in case.run and not case_id.startswith("config-"):
        args += ["--model", str(TEST_MODEL)]
    args += ["--output", str(tmp_path / "out.jpg")]
    r = edgepose(*args, timeout=120)
    _check_one_line("run", case, r)
    if case.code != 0:
        assert not (tmp_path / "out.jpg").exists()  # nothing half-written


@pytest.mark.parametrize("case_id", _CASE_IDS)
def test_serve_over_bad_input(corpus, case_id, broker, tmp_path):
    case = corpus[case_id]
    assert case.serve_config is not None
    if case.serve_config.startswith("@"):
        config = case.serve_config[1:]
    else:
        base = (
            f'device_id = "fault-pi"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
            f'outbox_path = "{tmp_path / "outbox.sqlite"}"\n'
        )
        if "[model]" not in case.serve_config:
            base += f'[model]\npath = "{TEST_MODEL}"\n'
        config_path = tmp_path / "device.toml"
        config_path.write_text(base + case.serve_config)
        config = str(config_path)
    r = edgepose("serve", "--config", config, *case.serve_args, timeout=120)
    _check_one_line("serve", case, r)
