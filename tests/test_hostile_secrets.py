"""A stream password in ``source.uri`` never reaches the output (issue 21, class 7).

Through the real commands: ``serve --print-config``, ``-v serve`` with a stream that refuses (the reconnect loop's
warnings, the fatal line), ``-v run``, ``python -m edgepose.profiles merged`` and a config error that echoes the value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.redact import redact_url
from tests.conftest import SHARED
from tests.procs import edgepose, free_port

MODEL = SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite"
#: Passwords as operators type them: '@', '/', ':' and a blank inside, as URL-encoding forgot them.
PASSWORDS = ["Jq7hV2xK", "Xq7@zZ/9:kW", "Wq blank Zx9", "%40Qz%2Fx9"]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return edgepose(*args, env={"EDGEPOSE_BOARD": ""}, timeout=timeout)


def write_config(tmp_path: Path, uri: str, extra: str = "") -> Path:
    p = tmp_path / "device.toml"
    p.write_text(
        f'device_id = "cam-1"\n[source]\nuri = {json.dumps(uri)}\nretry_initial_s = 0.1\nretry_max_s = 0.2\n'
        f"retry_max_attempts = 2\ntimeout_s = 2\n[model]\npath = {json.dumps(str(MODEL))}\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\noutbox_path = {json.dumps(str(tmp_path / "outbox.sqlite"))}\n'
        + extra
    )
    return p


def secret_parts(password: str) -> list[str]:
    # Every 4-character piece of the password: a cut at '@' or '/' must not leave part of it visible.
    return [password[i : i + 4] for i in range(len(password) - 3)]


@pytest.mark.parametrize(
    "url, want",
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://admin:***@10.0.0.5:554/s1"),
        ("rtsp://admin:p@ss/w:rd@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:with blank@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://:only-pw@cam/", "rtsp://:***@cam/"),
        ("http://cam/video.cgi?user=admin&pwd=s3cret&res=hd", "http://cam/video.cgi?user=admin&pwd=***&res=hd"),
        ("rtsp://cam/live?token=abc123#x", "rtsp://cam/live?token=***#x"),
        ("http://cam/mjpg?api_key=k3y&Password=x", "http://cam/mjpg?api_key=***&Password=***"),
        ("rtsp://user@cam/a", "rtsp://user@cam/a"),  # no password: unchanged
        ("rtsp://cam/live@1", "rtsp://cam/live@1"),  # '@' in the path is no user information
        ("stream rtsp://a:b3c@h/x could not be opened", "stream rtsp://a:***@h/x could not be opened"),
        ("got 'rtsp://u:pw1@h/' or rtsp://v:pw2@h2/", "got 'rtsp://u:***@h/' or rtsp://v:***@h2/"),
        ("picamera2", "picamera2"),
        ("/videos/a@b:c.mp4", "/videos/a@b:c.mp4"),
    ],
)
def test_redact_url(url, want):
    assert redact_url(url) == want


@pytest.mark.integration
@pytest.mark.parametrize("password", PASSWORDS)
def test_print_config_hides_the_stream_password(tmp_path, password):
    cfg = write_config(tmp_path, f"rtsp://admin:{password}@127.0.0.1:8554/cam?pwd=second-secret")
    r = cli("serve", "--config", str(cfg), "--print-config")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source"]["uri"] == "rtsp://admin:***@127.0.0.1:8554/cam?pwd=***"
    for part in secret_parts(password) + ["second-secret"]:
        assert part not in r.stdout + r.stderr, part
    merged = subprocess.run(
        [sys.executable, "-m", "edgepose.profiles", "merged", str(cfg)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["source"]["uri"] == "rtsp://admin:***@127.0.0.1:8554/cam?pwd=***"


@pytest.mark.integration
@pytest.mark.skipif(not MODEL.is_file(), reason="needs ../shared/models/coral")
def test_verbose_serve_and_reconnect_loop_hide_the_stream_password(tmp_path):
    password = "Xq7@zZ/9:kW"
    cfg = write_config(tmp_path, f"rtsp://admin:{password}@127.0.0.1:{free_port()}/cam")
    r = cli("-v", "serve", "--config", str(cfg), "--max-frames", "1")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "attempts to reopen it failed" in r.stderr, out[-2000:]
    assert "config: {" in out and "rtsp://admin:***@127.0.0.1:" in out  # the -v config line and the retry loop ran
    for part in secret_parts(password):
        assert part not in out, part


@pytest.mark.integration
@pytest.mark.skipif(not MODEL.is_file(), reason="needs ../shared/models/coral")
def test_verbose_run_hides_the_stream_password(tmp_path):
    r = cli("-v", "run", "--model", str(MODEL), "--source", f"rtsp://admin:hunter2@127.0.0.1:{free_port()}")
    assert r.returncode != 0 and "could not be opened" in r.stderr, r.stderr[-2000:]
    assert "rtsp://admin:***@127.0.0.1:" in r.stderr and "hunter2" not in r.stdout + r.stderr


@pytest.mark.integration
def test_config_error_does_not_echo_the_stream_password(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('source = "rtsp://admin:hunter2@cam/x"\n')  # a string where a table belongs: the value is echoed
    r = cli("serve", "--config", str(p), "--print-config")
    assert r.returncode == 2 and "source" in r.stderr, r.stderr
    assert "hunter2" not in r.stdout + r.stderr and "rtsp://admin:***@cam/x" in r.stderr
