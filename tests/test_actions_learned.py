"""Learned actions end to end on the real actions-9class data: eval (video-grouped folds), train, int8 export,
device-side inference without TensorFlow, and the ActionEngine's sliding window.

CI trains with few epochs (the benchmark does the full training); thresholds here check that the pipeline
learns (well above the 11 % of chance), not the final accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgepose.cli import main as cli
from tests.conftest import SHARED

SKELETONS = SHARED / "datasets/actions-9class/skeletons_info.txt"

pytestmark = [
    pytest.mark.skipif(not SKELETONS.exists(), reason="shared actions-9class dataset missing"),
]


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("model") / "actions.tflite"
    rc = cli(["actions", "train", "--skeletons", str(SKELETONS), "--epochs", "4", "--out", str(out)])
    assert rc == 0 and out.exists()
    return out


@pytest.mark.slow
@pytest.mark.tf
def test_eval_cross_validates_by_video_and_writes_the_confusion_matrix(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    rc = cli(
        [
            "actions",
            "eval",
            "--skeletons",
            str(SKELETONS),
            "--epochs",
            "2",
            "--folds",
            "5",
            "--report-dir",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "5 video-grouped folds" in out and "per-class recall" in out
    mean = float(out.split("mean ")[1].split("%")[0])
    assert mean > 40.0  # 9 classes: chance is 11 %
    # Each fold lists its test videos; no video in two folds.
    vids = [
        v.strip()
        for line in out.splitlines()
        if "test videos:" in line
        for v in line.split("test videos:")[1].split(",")
    ]
    assert len(vids) == len(set(vids)) >= 20  # 23 of the 24 videos have clips of 15+ frames
    png = tmp_path / "confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "confusion.txt").read_text()
    assert "recall" in table and "punch" in table


@pytest.mark.slow
@pytest.mark.tf
def test_trained_int8_model_runs_on_the_device_runtime(trained_model, tmp_path, capsys):
    from edgepose.actions import dataset as ds
    from edgepose.actions.classifier import ActionClassifier

    clf = ActionClassifier(trained_model)
    assert clf.window == 15 and clf.fps == 10.0 and len(clf.classes) == 9
    d = clf.interpreter.get_input_details()[0]
    assert d["dtype"] == np.int8  # full-integer model
    seqs = ds.load_skeletons(SKELETONS)
    kp, vis, labels, _ = ds.make_windows(seqs, 15, stride=7)
    pred = clf.predict_batch(kp, vis).argmax(axis=1)
    acc = float(np.mean([clf.classes[p] == lb for p, lb in zip(pred, labels)]))
    assert acc > 0.6  # training data, few epochs: it has learned something real
    # `actions eval --model` scores an exported model and draws its confusion matrix.
    rc = cli(
        ["actions", "eval", "--skeletons", str(SKELETONS), "--model", str(trained_model), "--report-dir", str(tmp_path)]
    )
    assert rc == 0 and (tmp_path / "confusion.png").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_device_side_classifier_does_not_import_tensorflow(trained_model):
    code = (
        "import sys, numpy as np\n"
        "from edgepose.actions import ActionEngine, ActionsConfig\n"
        f"eng = ActionEngine(ActionsConfig(model_path={str(trained_model)!r}))\n"
        "p = eng.classifier.predict(np.random.rand(15, 17, 2).astype('float32') * 100, np.ones((15, 17), bool))\n"
        "assert abs(float(p.sum()) - 1) < 1e-3\n"
        "assert 'tensorflow' not in sys.modules, 'device path imported TensorFlow'\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_engine_reports_learned_actions_per_track(trained_model):
    """Replay two real clips (wave, sit) as two tracks at 30 fps: each track gets its own model events."""
    from edgepose.actions import ActionEngine, ActionsConfig
    from edgepose.actions import dataset as ds
    from edgepose.types import Pose

    seqs = ds.load_skeletons(SKELETONS)
    wave = max((s for s in seqs if s.label == "wave"), key=lambda s: len(s.keypoints))
    sit = max((s for s in seqs if s.label == "sit"), key=lambda s: len(s.keypoints))
    n = min(len(wave.keypoints), len(sit.keypoints), 120)
    eng = ActionEngine(ActionsConfig(model_path=str(trained_model), rules=[], model_min_confidence=0.3))
    events = []
    for k in range(n * 3):  # 30 fps camera, the clips are 10 fps: each frame shown 3 times
        t = k / 30.0
        i = k // 3
        poses = []
        for tid, s in ((1, wave), (2, sit)):
            p = Pose(s.keypoints[i], s.visible[i].astype(np.float32), 0.9, track_id=tid)
            poses.append(p)
        events += eng.update(poses, t)
    events += eng.close()
    by_track = {
        1: [e for e in events if e.track_id == 1 and e.kind == "start"],
        2: [e for e in events if e.track_id == 2 and e.kind == "start"],
    }
    assert by_track[1] and by_track[2]
    assert all(e.extra.get("source") == "model" for e in events)

    # The dominant class per track is the clip's (first windows need 1.4 s of history).
    def dominant(tid):
        dur: dict[str, float] = {}
        for e in events:
            if e.track_id == tid and e.kind == "end":
                dur[e.action] = dur.get(e.action, 0.0) + e.end - e.start
        return max(dur, key=dur.get)

    assert dominant(1) == "wave" and dominant(2) == "sit"
    assert all(e.start >= 1.4 - 1e-6 for e in events)
    # Tracks that leave are forgotten after forget_after_s.
    eng.update([], n * 3 / 30.0 + 5.0)
    assert not eng.models


def test_rules_command_prints_events_of_a_recording(tmp_path, capsys):
    from edgepose.actions.synthetic import lying, sequence, standing
    from edgepose.types import FrameResult

    s = standing(460.0)
    rec = tmp_path / "fall.jsonl"
    with rec.open("w") as fh:
        for k, (t, p) in enumerate(sequence([(0, s), (1.0, s), (1.6, lying(s, 460.0)), (5.0, lying(s, 460.0))], 15.0)):
            fh.write(json.dumps(FrameResult(k, t, [p], 640, 480).to_dict()) + "\n")  # no ids: the command tracks
    assert cli(["actions", "rules", "--input", str(rec), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    falls = [e for e in events if e["action"] == "fall"]
    assert len(falls) == 1 and falls[0]["kind"] == "instant" and falls[0]["track_id"] >= 1
    assert cli(["actions", "rules", "--input", str(rec)]) == 0
    assert "fall" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli(["actions", "rules", "--input", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Fix:" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v":1}\n')
    assert cli(["actions", "rules", "--input", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert cli(["actions", "train", "--out", str(tmp_path / "m.tflite")]) == 2
    assert "no training data" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.tf
def test_action_models_open_through_the_registry_and_old_files_still_read(trained_model, tmp_path):
    """The exported model says ``model_type = action_classifier``; files from before (``type``) open the same."""
    from edgepose.actions.classifier import ActionClassifier
    from edgepose.model import flatbuf
    from edgepose.model.registry import model_type_of, open_model

    buf = trained_model.read_bytes()
    meta = flatbuf.read_metadata(buf)
    assert meta["model_type"] == "action_classifier" and "type" not in meta
    clf = open_model(trained_model, threads=1)
    assert isinstance(clf, ActionClassifier) and model_type_of(trained_model) == "action_classifier"
    old_meta = {("type" if k == "model_type" else k): v for k, v in meta.items()}
    old = tmp_path / "old.tflite"
    old.write_bytes(flatbuf.write_metadata(buf, old_meta))
    assert model_type_of(old) == "action_classifier"
    rng = np.random.default_rng(0)
    kp = rng.uniform(100, 300, (clf.window, 17, 2)).astype(np.float32)
    vis = np.ones((clf.window, 17), bool)
    np.testing.assert_array_equal(open_model(old).predict(kp, vis), clf.predict(kp, vis))
