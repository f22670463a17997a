"""Config values at their edges (issue 21, class 5): refused at load time with the field named, never a busy loop.

The whole corpus goes through ``load_config`` (what every command loads with, TOML file and all); a sample of it
through ``edgepose serve --config X --print-config``, and serve's own numeric flags through the real command.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
import typing

import pytest
from pydantic import BaseModel

from edgepose.config import EdgeposeConfig, load_config
from edgepose.errors import ConfigError
from tests.conftest import coral_model
from tests.procs import edgepose, edgepose_process, finish, wait_until

NOT_FINITE = ["nan", "inf", "-inf", "+inf"]  # valid TOML floats


def numeric_fields(model: type[BaseModel] = EdgeposeConfig, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every int/float field of every section (nested ones too), as a key path."""
    out = []
    for name, f in model.model_fields.items():
        kinds = typing.get_args(f.annotation) or (f.annotation,)
        sub = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if sub is not None:
            out += numeric_fields(sub, (*path, name))
        elif any(k in (int, float) for k in kinds) and bool not in kinds:
            out.append((*path, name))
    return out


def toml_for(path: tuple[str, ...], value: str) -> str:
    table, key = path[:-1], path[-1]
    return (f"[{'.'.join(table)}]\n" if table else "") + f"{key} = {value}\n"


def load(tmp_path, text: str):
    p = tmp_path / "device.toml"
    p.write_text(text)
    return load_config(p)


@pytest.fixture(autouse=True)
def _no_board(monkeypatch):
    monkeypatch.delenv("EDGEPOSE_BOARD", raising=False)


def assert_refused(tmp_path, text: str, field: str, words: str = "") -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and field in msg and words in msg, msg
    return msg


FIELDS = numeric_fields()


def test_every_section_has_numeric_fields_in_the_corpus():
    sections = {p[0] for p in FIELDS if len(p) > 1}
    assert {"model", "source", "decode", "tracking", "actions", "mqtt", "relocalization", "http"} <= sections
    assert len(FIELDS) > 60


@pytest.mark.parametrize("path", FIELDS, ids=".".join)
def test_nan_inf_and_booleans_are_refused_for_every_number(tmp_path, path):
    field = ".".join(path)
    for value in NOT_FINITE:
        msg = assert_refused(tmp_path, toml_for(path, value), field)
        assert "finite" in msg or "integer" in msg, msg
    assert_refused(tmp_path, toml_for(path, "true"), field, "a number is needed")


#: (key path, value, words in the message): intervals that would spin, ports off the range, rates and sizes too big.
EDGES = [
    ("mqtt.status_interval", "0", "greater than or equal to 1"),
    ("mqtt.status_interval", "1e-9", "greater than or equal to 1"),
    ("mqtt.status_interval", "1e12", "less than or equal to 86400"),  # the status expiry (3 intervals) is a uint32
    ("mqtt.backoff_min", "0", "greater than or equal to 0.1"),
    ("mqtt.backoff_min", "1e-9", "greater than or equal to 0.1"),
    ("mqtt.backoff_max", "1e-9", "greater than or equal to 0.1"),
    ("mqtt.backoff_max", "1e9", "less than or equal to 86400"),
    ("mqtt.keepalive", "0", "greater than or equal to 5"),
    ("mqtt.keepalive", "100000", "less than or equal to 3600"),
    ("mqtt.port", "0", "greater than or equal to 1"),
    ("mqtt.port", "-1", "greater than or equal to 1"),
    ("mqtt.port", "65536", "less than or equal to 65535"),
    ("mqtt.port", "1883.5", "fractional part"),
    ("mqtt.port", "99999999999999999999", "less than or equal to 65535"),
    ("mqtt.poses_rate", "1e9", "less than or equal to 1000"),
    ("mqtt.poses_rate", "-1", "greater than or equal to 0"),
    ("mqtt.drain_timeout", "1e9", "less than or equal to 3600"),
    ("mqtt.outbox_max_events", "0", "greater than or equal to 10"),
    ("mqtt.outbox_max_events", "1000000000000", "less than or equal to 10000000"),
    ("mqtt.outbox_window", "0", "greater than or equal to 1"),
    ("mqtt.homeassistant.fall_hold", "0", "greater than 0"),
    ("mqtt.homeassistant.fall_hold", "1e12", "less than or equal to 86400"),
    ("source.retry_initial_s", "0", "greater than or equal to 0.01"),
    ("source.retry_initial_s", "1e-9", "greater than or equal to 0.01"),
    ("source.retry_max_s", "1e-9", "greater than or equal to 0.01"),
    ("source.timeout_s", "1e-9", "greater than or equal to 0.1"),
    ("source.timeout_s", "1e9", "less than or equal to 3600"),
    ("source.fps", "1e9", "less than or equal to 1000"),
    ("source.fps", "1e-9", "greater than or equal to 0.001"),
    ("source.fps", "0", "greater than or equal to 0.001"),
    ("source.width", "1000000000", "less than or equal to 16384"),
    ("source.height", "0", "greater than 0"),
    ("source.prefetch", "100000", "less than or equal to 64"),
    ("source.retry_max_attempts", "-1", "greater than or equal to 0"),
    ("http.port", "-1", "greater than or equal to 0"),
    ("http.port", "65536", "less than or equal to 65535"),
    ("http.stream_fps", "1e-9", "greater than or equal to 0.1"),
    ("http.stream_fps", "1e9", "less than or equal to 60"),
    ("http.max_viewers", "0", "greater than or equal to 1"),
    ("http.max_viewers", "100000", "less than or equal to 64"),
    ("http.events_kept", "1000000000", "less than or equal to 10000"),
    ("http.stream_width", "1", "greater than or equal to 64"),
    ("model.threads", "0", "greater than or equal to 1"),
    ("model.threads", "1000000", "less than or equal to 64"),
    ("decode.max_poses", "0", "greater than or equal to 1"),
    ("decode.nms_radius", "0", "greater than 0"),
    ("decode.nms_radius", "1e300", "less than or equal to 1000"),
    ("tracking.max_age", "1000000000", "less than or equal to 10000"),
    ("tracking.smoothing_min_cutoff", "0", "greater than 0"),
    ("actions.forget_after_s", "0", "greater than 0"),
    ("actions.wave_window_s", "1e9", "less than or equal to 30"),
    ("actions.model_stride", "0", "greater than or equal to 1"),
    ("relocalization.every_n_frames", "0", "greater than or equal to 1"),
    ("relocalization.every_n_frames", "1e12", "less than or equal to 100000"),
]


@pytest.mark.parametrize("key, value, words", EDGES, ids=[f"{k}={v}" for k, v, _ in EDGES])
def test_edge_value_is_refused_with_the_field_named(tmp_path, key, value, words):
    assert_refused(tmp_path, toml_for(tuple(key.split(".")), value), key, words)


@pytest.mark.parametrize(
    "text, field, words",
    [
        (
            "[source]\nretry_initial_s = 10\nretry_max_s = 1\n",
            "source",
            "retry_max_s (1.0) must be at least retry_initial_s (10.0)",
        ),
        (
            "[mqtt]\nbackoff_min = 10\nbackoff_max = 1\n",
            "mqtt",
            "backoff_max (1.0) must be at least backoff_min (10.0)",
        ),
        ('[mqtt]\nhost = ""\n', "mqtt.host", "at least 1 character"),
        (f'device_id = "{"d" * 65}"\n', "device_id", "at most 64 characters"),
        ("[mqtt]\nkeepalive = 5.5\n", "mqtt.keepalive", "fractional part"),
    ],
)
def test_related_and_string_edges(tmp_path, text, field, words):
    assert_refused(tmp_path, text, field, words)


@pytest.mark.parametrize(
    "key, value",
    [
        ("mqtt.status_interval", "1"),
        ("mqtt.backoff_min", "0.1"),
        ("source.retry_initial_s", "0.01"),
        ("source.timeout_s", "0.1"),
        ("http.port", "0"),
        ("mqtt.port", "65535"),
        ("mqtt.poses_rate", "1000"),
        ("source.fps", "0.001"),
        ("http.stream_fps", "60"),
    ],
)
def test_the_edges_themselves_are_accepted(tmp_path, key, value):
    cfg = load(tmp_path, toml_for(tuple(key.split(".")), value))
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    assert obj == float(value) and math.isfinite(obj)


def serve(*args: str) -> subprocess.CompletedProcess:
    env = {"EDGEPOSE_BOARD": None}
    return edgepose("serve", *args, timeout=120, env=env)


@pytest.mark.parametrize(
    "text, field",
    [
        ("[mqtt]\nstatus_interval = nan\n", "mqtt.status_interval"),
        ("[mqtt]\nbackoff_min = 1e-9\n", "mqtt.backoff_min"),
        ("[source]\nretry_initial_s = 0\n", "source.retry_initial_s"),
        ("[http]\nport = 65536\n", "http.port"),
        ("[mqtt]\nport = true\n", "mqtt.port"),
        ("[mqtt]\nposes_rate = inf\n", "mqtt.poses_rate"),
    ],
)
@pytest.mark.integration
def test_serve_print_config_refuses_in_one_line(tmp_path, text, field):
    p = tmp_path / "device.toml"
    p.write_text(text)
    r = serve("--config", str(p), "--print-config")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--status-every", "nan"),
        ("--status-every", "1e-9"),
        ("--status-every", "-1"),
        ("--replay-fps", "0"),
        ("--replay-fps", "inf"),
        ("--replay-fps", "1e9"),
    ],
)
@pytest.mark.integration
def test_serve_numeric_flags_are_bounded(flag, value):
    r = serve(flag, value, "--print-config")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and f"argument {flag}" in lines[-1] and "outside" in lines[-1], r.stderr


MODEL = str(coral_model("353_481"))


def _cpu_ticks(pid: int) -> int:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.integration
@pytest.mark.skipif(
    not os.path.isfile(MODEL) or not os.path.isdir("/proc/self"), reason="needs the Coral model and /proc"
)
def test_the_smallest_retry_interval_is_no_busy_loop_and_no_log_flood(tmp_path):
    """At the floors (0.01 s retries, a refused stream and broker) serve neither spins nor floods the journal."""
    p = tmp_path / "device.toml"
    p.write_text(
        f'device_id = "cam-1"\n[source]\nuri = "rtsp://127.0.0.1:9/x"\nretry_initial_s = 0.01\nretry_max_s = 0.01\n'
        f'timeout_s = 0.1\n[model]\npath = "{os.path.abspath(MODEL)}"\n[mqtt]\nhost = "127.0.0.1"\nport = 9\n'
        f'backoff_min = 0.1\nbackoff_max = 0.1\nstatus_interval = 1\noutbox_path = "{tmp_path / "o.sqlite"}"\n'
    )
    env = {"EDGEPOSE_BOARD": None}
    log = tmp_path / "serve.err"
    with log.open("w") as stderr:
        proc = edgepose_process("serve", "--config", str(p), stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        # The model loaded and the reconnect loop running (its retries logged), then a while more to settle.
        wait_until(
            lambda: "retrying in 0.01 s (attempt" in log.read_text() or proc.poll() is not None,
            60,
            "the reconnect loop",
        )
        assert proc.poll() is None, log.read_text()[-2000:]
        time.sleep(1)
        t0, c0 = time.monotonic(), _cpu_ticks(proc.pid)
        time.sleep(5)  # what is measured: the loop's CPU share over 5 s
        share = (_cpu_ticks(proc.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
    finally:
        finish(proc, 60, terminate=True)
    err = log.read_text()
    attempts = [int(n) for n in re.findall(r"retrying in 0\.01 s \(attempt (\d+)\)", err)]
    assert attempts and max(attempts) >= 64, err[-2000:]  # the loop really ran at its floor
    assert len(attempts) <= 3 + max(attempts).bit_length(), attempts  # 1, 2, 3, then powers of two only
    assert share < 0.5, f"serve used {share:.0%} of a core while retrying"
