"""Messages a user reads: a truncated video, a misspelt config key, model shapes without numpy reprs, benchmark --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edgepose.config import load_config
from edgepose.errors import ConfigError, first_line
from tests.conftest import REPO, SHARED
from tests.procs import edgepose

VIDEO = SHARED / "video" / "openpose_video.avi"
IMAGE = SHARED / "images" / "test_couple.jpg"


def decodable_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.integration
def test_truncated_video_says_it_ended_early_and_keeps_what_it_read(tmp_path):
    data = VIDEO.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 5])  # a copy that stopped part-way
    header = int(cv2.VideoCapture(str(VIDEO)).get(cv2.CAP_PROP_FRAME_COUNT))
    readable = decodable_frames(cut)
    assert 0 < readable < header - 10
    jsonl = tmp_path / "k.jsonl"
    res = edgepose("run", "--source", str(cut), "--jsonl", str(jsonl))
    assert res.returncode == 0, res.stderr
    assert f"ended early at frame {readable} of the {header} its header announces" in res.stderr, res.stderr
    assert "Fix: " in res.stderr and "[h264 @" not in res.stderr  # our line, not FFmpeg's
    assert len(jsonl.read_text().splitlines()) == readable  # nothing read is lost
    # The whole file: no such warning.
    full = edgepose("run", "--source", str(VIDEO), "--max-frames", "5", "--jsonl", str(tmp_path / "full.jsonl"))
    assert full.returncode == 0 and "ended early" not in full.stderr, full.stderr


@pytest.mark.integration
def test_a_misspelt_config_key_proposes_the_closest_known_key(tmp_path):
    cfg = tmp_path / "device.toml"
    cfg.write_text(
        '[decode]\nnms_radus = 10\n[mqtt.tls]\nca_fil = "ca.pem"\n[actions]\nwave_min_amplitud = 0.3\nzzz = 1\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert f"{cfg}: decode.nms_radus: unknown field; did you mean 'nms_radius'? (got 10)" in msg
    assert "mqtt.tls.ca_fil: unknown field; did you mean 'ca_file'?" in msg
    assert "actions.wave_min_amplitud: unknown field; did you mean 'wave_min_amplitude'?" in msg
    assert "actions.zzz: unknown field; check the spelling" in msg  # nothing close: no guess
    res = edgepose("run", "--config", str(cfg), "--source", str(IMAGE))
    assert res.returncode == 2 and "did you mean 'nms_radius'?" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.integration
@pytest.mark.tf
def test_model_shapes_in_messages_are_plain_numbers(tmp_path):
    """A non-PoseNet .tflite given to `run` is named with its input shape, not [np.int32(1), …]."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 15, 72], tf.float32)])
    def classifier(x):
        return tf.reduce_mean(x, axis=1)[:, :2]

    model = tmp_path / "not_posenet.tflite"
    model.write_bytes(
        tf.lite.TFLiteConverter.from_concrete_functions([classifier.get_concrete_function()], classifier).convert()
    )
    res = edgepose("run", "--source", str(IMAGE), "--model", str(model))
    assert res.returncode == 2, res.stderr
    assert "not_posenet.tflite has inputs [[1, 15, 72]]" in res.stderr, res.stderr
    assert "np." not in res.stderr and res.stderr.count("\n") == 1, res.stderr


@pytest.mark.integration
@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "benchmarks").glob("*.py")))
def test_every_benchmark_prints_help_without_running(script):
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: "), res.stdout[:500]
    assert "options:" in res.stdout


def test_listen_record_messages_name_the_jsonl_option(tmp_path):
    # What `edgepose actions train --labels` and `serve --replay` say about a bad recording names the real option.
    from edgepose.sinks.jsonl import read_frame_records

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"frame": 0}) + "\n")
    with pytest.raises(Exception) as e:
        list(read_frame_records(bad))
    assert "edgepose listen --jsonl" in str(e.value)


@pytest.mark.parametrize(
    "err, kw, want",
    [
        (ValueError(""), {}, "ValueError"),  # an empty message once raised IndexError in convert/sources.py
        (ValueError(" \n\t"), {}, "ValueError"),
        (ValueError(""), {"default": ""}, ""),
        ("", {"default": "no output"}, "no output"),
        (RuntimeError("\nfirst\nsecond\n"), {}, "first"),
        (RuntimeError("first\nsecond"), {"last": True}, "second"),
        (OSError("x" * 50), {"limit": 10}, "x" * 10),
    ],
)
def test_first_line_of_an_error_is_one_short_line_and_never_raises(err, kw, want):
    assert first_line(err, **kw) == want
