"""edgepose config check (errors at the line of the offending key) and the shipped JSON Schema of the device config."""

from __future__ import annotations

import json
import subprocess

import jsonschema
import pytest

from edgepose.compat import tomllib
from edgepose.config_check import SCHEMA_PATH, check_file, json_schema, key_lines
from tests.conftest import REPO
from tests.procs import edgepose

FW = REPO / "firmware_configs"


def cli(*args: str) -> subprocess.CompletedProcess:
    return edgepose("config", *args, timeout=120)


BAD = """\
# a device config with four mistakes
device_id = "kitchen/1"

[model]
threads = 100
delegate_options = { priority = [1, 2] }

[source]
uri = "http://phone:8080/video"
retry_max_s = -1

[mqtt]
hots = "broker.local"
"""


@pytest.mark.integration
def test_each_error_is_one_line_at_the_offending_key(tmp_path):
    f = tmp_path / "device.toml"
    f.write_text(BAD)
    r = cli("check", str(f))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    by_field = {ln.split(": ", 2)[1]: ln.split(": ", 1)[0] for ln in lines[:-1]}
    assert by_field == {
        "device_id": f"{f}:2",
        "model.threads": f"{f}:5",
        "model.delegate_options": f"{f}:6",
        "source.retry_max_s": f"{f}:10",
        "mqtt.hots": f"{f}:13",
    }, lines
    assert "did you mean 'host'?" in r.stderr
    assert lines[-1].startswith(f"edgepose config check: {f}: 5 problems. Fix:")


@pytest.mark.integration
def test_a_valid_config_says_so(tmp_path):
    r = cli("check", str(FW / "device.toml"))
    assert r.returncode == 0 and r.stdout.strip() == f"{FW / 'device.toml'}: valid", r.stderr


def test_a_problem_from_the_board_profile_points_into_the_profile(tmp_path):
    (tmp_path / "board.toml").write_text('[model]\npath = "posenet"\n\nthreads = 0\n')
    f = tmp_path / "device.toml"
    f.write_text('[source]\nuri = "0"\n')
    assert check_file(f) == [
        f"{tmp_path / 'board.toml'}:4: model.threads: Input should be greater than or equal to 1 (got 0)"
    ]


@pytest.mark.integration
def test_toml_syntax_errors_keep_tomls_own_line(tmp_path):
    f = tmp_path / "device.toml"
    f.write_text("[model]\nthreads = \n")
    r = cli("check", str(f))
    assert r.returncode == 2 and "(at line 2, column" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_key_lines_follow_tables_dotted_keys_and_inline_tables():
    text = "\n".join(
        [
            "a = 1",
            "[mqtt]",
            'tls.ca = "x"',
            's = """',
            "fake = 2",
            '"""',
            "[model]",
            'delegate_options = { "k.x" = 1, b = 2 }',
        ]
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1 and lines[("mqtt",)] == 2 and lines[("mqtt", "tls", "ca")] == 3
    assert ("mqtt", "fake") not in lines  # inside a multi-line string
    assert lines[("model", "delegate_options", "k.x")] == 8 and lines[("model", "delegate_options", "b")] == 8


# -- the JSON Schema ----------------------------------------------------------------------


@pytest.mark.integration
def test_the_shipped_schema_is_the_generated_one():
    shipped = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped == json_schema(), "run: edgepose config schema --write edgepose/schemas/config.schema.json"
    r = cli("schema")
    assert r.returncode == 0 and json.loads(r.stdout) == shipped


@pytest.mark.parametrize("path", [FW / "device.toml", *sorted((FW / "boards").glob("*.toml"))], ids=lambda p: p.name)
def test_the_example_config_and_profiles_validate_against_the_schema(path):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(tomllib.loads(path.read_text(encoding="utf-8")), schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_rejects_what_the_check_rejects(tmp_path):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    data = tomllib.loads(BAD)
    errors = {
        ".".join(map(str, e.absolute_path)) or "(top)"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    }
    # threads, the inline table's list, the negative delay and the pattern; the typo as an unexpected key of [mqtt]
    assert {"device_id", "model.threads", "model.delegate_options.priority", "source.retry_max_s", "mqtt"} <= errors, (
        errors
    )
