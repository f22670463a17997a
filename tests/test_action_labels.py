"""Ongoing actions are drawn on every frame of the annotated output until they end."""

from __future__ import annotations

import json

import cv2
import numpy as np

from edgepose.cli import main
from edgepose.draw import ActionLabels
from edgepose.types import ActionEvent

from .conftest import SHARED

VIDEO = SHARED / "video" / "openpose_video.avi"


def test_labels_last_from_start_to_end_and_instants_for_hold():
    labels = ActionLabels(hold=1.0)
    assert labels.update([ActionEvent(3, "standing", "start", 0.0)], 0.0) == {3: ["standing"]}
    assert labels.update([], 0.5) == {3: ["standing"]}
    assert labels.update([], 30.0) == {3: ["standing"]}  # no time limit on an ongoing action
    assert labels.update([ActionEvent(4, "fall", "instant", 30.1)], 30.1) == {3: ["standing"], 4: ["fall"]}
    assert labels.update([ActionEvent(3, "squat", "count", 30.2, count=2)], 30.2) == {
        3: ["standing", "squat x2"],
        4: ["fall"],
    }
    assert labels.update([], 31.15) == {3: ["standing", "squat x2"]}
    assert labels.update([ActionEvent(3, "standing", "end", 0.0, end=31.3)], 31.3) == {}


def test_annotated_frames_show_ongoing_actions_until_they_end(tmp_path):
    """The same clip with and without --actions: frames differ exactly while some action is ongoing."""
    outs = {}
    for name, extra in (("plain", []), ("actions", ["--actions", "--jsonl", str(tmp_path / "a.jsonl")])):
        folder = tmp_path / name
        folder.mkdir()
        assert main(["run", "--source", str(VIDEO), "--max-frames", "70", "--output", f"{folder}/", "-q", *extra]) == 0
        outs[name] = sorted(folder.glob("*.jpg"))
    assert len(outs["plain"]) == len(outs["actions"]) == 70
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    labels = ActionLabels()
    ongoing = [
        bool(
            labels.update(
                [
                    ActionEvent(**{k: e[k] for k in ("track_id", "action", "kind", "start", "end", "count") if k in e})
                    for e in r.get("events", [])
                ],
                r["ts"],
            )
        )
        for r in records
    ]
    first = ongoing.index(True)
    assert sum(ongoing) >= 10, "the clip's people stand for many frames"
    for i, (a, b) in enumerate(zip(outs["plain"], outs["actions"])):
        differs = bool(np.any(cv2.imread(str(a)) != cv2.imread(str(b))))
        assert differs == ongoing[i], (
            f"frame {i}: labels drawn={differs}, actions ongoing={ongoing[i]} (first at {first})"
        )
