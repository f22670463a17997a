"""What a user sees on the terminal: TensorFlow's own logs only with -v, progress bars only in a terminal.

Every test runs the real ``edgepose`` command in a subprocess, piped or under a
pseudo-terminal (the ``pty`` module), and reads what it printed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests import procs
from tests.conftest import SHARED

pytestmark = pytest.mark.integration  # every test here starts a broker, a browser or a subprocess

FROZEN = SHARED / "models" / "posenet-python" / "model-mobilenet_v1_050.pb"
VIDEO = SHARED / "video" / "openpose_video.avi"
SKELETONS = SHARED / "datasets" / "actions-9class" / "skeletons_info.txt"

#: What TensorFlow/TFLite print on their own: absl C++ log lines, CUDA, oneDNN, XNNPACK, Keras' ANSI bars.
TF_NOISE = re.compile(
    r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|cuda|oneDNN|XNNPACK|fully_quantize|Saved artifact|\x1b\[", re.M | re.I
)
#: A tqdm bar: "  40%|████      | 8/20 [00:01<00:02, 5.1frame/s]".
TQDM_BAR = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")


#: What TensorFlow and the native libraries print is left on (so that the tests see it is not shown); models from ../shared.
ENV = {"TF_CPP_MIN_LOG_LEVEL": None, "EDGEPOSE_NATIVE_LOGS": None, "EDGEPOSE_MODEL_MIRROR": str(SHARED / "models")}


def edgepose(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return procs.edgepose(*args, env=ENV, cwd=cwd, timeout=timeout)


def edgepose_in_terminal(*args: str, timeout: float = 600) -> tuple[int, str]:
    """Run ``edgepose ARGS`` with stdin/stdout/stderr on a pseudo-terminal; return its exit code and everything it printed."""
    master, slave = pty.openpty()
    # A terminal has a size; a fresh pty is 0x0, where tqdm draws a bar of width 0.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = procs.edgepose_process(
        *args, env={**ENV, "TERM": "xterm"}, stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError as err:  # EIO: the child closed the terminal
                if err.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=timeout)
    return code, b"".join(chunks).decode("utf-8", "replace")


# -- progress bars: in a terminal, not in a pipe -----------------------------------------------------------------


def test_run_shows_a_progress_bar_in_a_terminal_and_none_when_piped(tmp_path):
    args = ("run", "--source", str(VIDEO), "--max-frames", "12", "--jsonl", str(tmp_path / "k.jsonl"))
    code, text = edgepose_in_terminal(*args)
    assert code == 0, text
    assert TQDM_BAR.search(text) and "openpose_video.avi" in text, text
    piped = edgepose(*args)
    assert piped.returncode == 0, piped.stderr
    assert not TQDM_BAR.search(piped.stderr + piped.stdout), piped.stderr
    assert "12 frames" in piped.stdout + piped.stderr  # the summary is still there


# -- TensorFlow quiet by default, its own logs with -v ----------------------------------------------------------


@pytest.mark.tf
@pytest.mark.slow
def test_convert_is_quiet_by_default_and_shows_tensorflow_logs_with_v(tmp_path):
    out = tmp_path / "f32.tflite"
    args = ("convert", str(FROZEN), "--precision", "float32", "--input-size", "257x257", "--out", str(out))
    res = edgepose(*args)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert res.stdout.startswith(f"float32  {out}") and res.stdout.count("\n") == 1, res.stdout
    verbose = edgepose("-v", *args)
    assert verbose.returncode == 0, verbose.stderr
    assert TF_NOISE.search(verbose.stderr), verbose.stderr  # TensorFlow's own lines are there when asked for


@pytest.mark.tf
@pytest.mark.slow
def test_actions_train_is_quiet_and_its_bar_shows_in_a_terminal(tmp_path):
    args = (
        "actions",
        "train",
        "--skeletons",
        str(SKELETONS),
        "--classes",
        "stand,walk",
        "--epochs",
        "2",
        "--kind",
        "mlp",
        "--width",
        "8",
        "--out",
        str(tmp_path / "act.tflite"),
    )
    res = edgepose(*args)
    assert res.returncode == 0, res.stderr
    assert not TF_NOISE.search(res.stderr + res.stdout), res.stderr + res.stdout
    assert not TQDM_BAR.search(res.stderr)
    assert [ln for ln in res.stderr.splitlines()] == [
        ln for ln in res.stderr.splitlines() if ln.startswith("training mlp on")
    ]
    assert res.stdout.startswith(f"wrote {tmp_path / 'act.tflite'}"), res.stdout
    code, text = edgepose_in_terminal(*args)
    assert code == 0, text
    assert re.search(r"epochs: 100%\|.*\| 2/2", text), text
    assert not TF_NOISE.search(text), text


@pytest.mark.tf
@pytest.mark.slow
def test_reloc_train_has_no_keras_progress_codes(tmp_path):
    data = tmp_path / "room"
    synth = edgepose(
        "reloc",
        "synth",
        "--out",
        str(data),
        "--images",
        str(SHARED / "images"),
        "--train",
        "16",
        "--test",
        "4",
        "--size",
        "64x48",
        "--workers",
        "1",
    )
    assert synth.returncode == 0, synth.stderr
    assert not TQDM_BAR.search(synth.stderr), synth.stderr  # piped: no bar
    args = (
        "reloc",
        "train",
        "--data",
        str(data),
        "--out-dir",
        str(tmp_path / "m"),
        "--epochs",
        "2",
        "--input-size",
        "32",
        "--batch-size",
        "8",
    )
    res = edgepose(*args)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert not TF_NOISE.search(res.stdout), res.stdout
    assert res.stdout.startswith("predictor"), res.stdout
    code, text = edgepose_in_terminal(*args)
    assert code == 0, text
    assert re.search(r"training: 100%\|.*\| 2/2", text), text  # our own epoch bar, not Keras'
    assert not TF_NOISE.search(text), text
