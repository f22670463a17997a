"""Tracker accuracy and cost: edgepose's OKS + Hungarian tracker against norfair.

    python benchmarks/tracking_bench.py [--frames N]

Accuracy on two kinds of input:
- synthetic crowds with known identities (``tests/crowds.py``), 30 and 10 fps: ID switches and
  distinct IDs per person (1.0 is perfect);
- the shared street video (``../shared/video/openpose_video.avi``, PoseNet 353x481 poses), every frame (50 fps)
  and every 3rd frame (~17 fps, a Pi's rate): breaks of the unambiguous-continuity reference
  (``edgepose.tracking.metrics``) and distinct IDs among poses scoring >= 0.5.
Cost: mean microseconds per frame over all inputs, on one core, and the speed-up over edgepose's
tracker, run in the same process.

norfair is optional (``pip install norfair``; it declares numpy < 2, so install it with ``--no-deps`` next to
numpy 2); rows for it are skipped when it is not importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.baselines.tables import table  # noqa: E402
from edgepose import geometry as g  # noqa: E402
from edgepose.tracking import Tracker, TrackingConfig  # noqa: E402
from edgepose.tracking.metrics import continuity_breaks, continuity_pairs, score_against_truth  # noqa: E402
from edgepose.types import Pose  # noqa: E402
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared
from tests.crowds import crowd_scene  # noqa: E402

MODEL = SHARED / "models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite"
VIDEO = SHARED / "video/openpose_video.avi"

#: A tracker under test: (fps) -> step(poses, ts) that sets track_id on the poses.
Factory = Callable[[float], Callable[[list[Pose], float], None]]


def edgepose_factory(**kw) -> Factory:
    def make(fps: float):
        tr = Tracker(TrackingConfig(max_age=max(1, int(round(fps))), **kw))
        return lambda poses, ts: tr.update(poses, ts)

    return make


def norfair_factory(kind: str) -> Factory | None:
    try:
        import norfair
    except ImportError:
        return None

    def oks_distance(det, obj) -> float:
        vis_d = det.scores >= 0.2
        # live_points stays empty with initialization_delay=0; the last matched detection says which parts exist.
        vis_o = obj.last_detection.scores >= 0.2
        area = max(g.bbox_area(obj.estimate, vis_o), 32.0 * 32.0)
        return 1.0 - g.oks(obj.estimate, vis_o, det.points, vis_d, area * 2.5**2)  # same widened sigmas as edgepose

    def make(fps: float):
        age = max(1, int(round(fps)))
        if kind == "oks":
            tr = norfair.Tracker(
                distance_function=oks_distance,
                distance_threshold=0.8,
                hit_counter_max=age,
                initialization_delay=0,
                pointwise_hit_counter_max=age,
                detection_threshold=0.2,
            )
        elif kind == "voting":
            # norfair's own keypoint distance: how many keypoints are within 30 px (fails if fewer than 4).
            dist = norfair.distances.create_keypoints_voting_distance(
                keypoint_distance_threshold=30, detection_threshold=0.2
            )
            tr = norfair.Tracker(
                distance_function=dist,
                distance_threshold=13,
                hit_counter_max=age,
                initialization_delay=0,
                pointwise_hit_counter_max=age,
                detection_threshold=0.2,
            )
        else:
            raise ValueError(kind)

        def step(poses: list[Pose], ts: float) -> None:
            dets = [
                norfair.Detection(points=p.keypoints.astype(np.float64), scores=p.scores.astype(np.float64))
                for p in poses
            ]
            objs = tr.update(dets)
            by_det = {id(o.last_detection): o.id for o in objs if o.last_detection is not None}
            for p, d in zip(poses, dets):
                p.track_id = by_det.get(id(d))

        return step

    return make


def video_poses(max_frames: int | None) -> list[list[Pose]]:
    import cv2

    from edgepose.model.posenet import load_posenet

    model = load_posenet(str(MODEL), threads=1)
    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(model.estimate(img))
    return frames


def copy_frames(frames: list[list[Pose]]) -> list[list[Pose]]:
    """Fresh poses for each tracker (it sets their ids and may smooth their keypoints)."""
    return [[Pose(p.keypoints.copy(), p.scores.copy(), p.score) for p in f] for f in frames]


def run(make: Factory, frames: list[list[Pose]], ts: list[float], fps: float) -> float:
    step = make(fps)
    t0 = time.perf_counter()
    for poses, t in zip(frames, ts):
        step(poses, t)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, help="use only the first N video frames")
    args = ap.parse_args()
    trackers: dict[str, Factory | None] = {
        "edgepose": edgepose_factory(),
        "edgepose, no motion": edgepose_factory(predict_motion=False),
        "norfair + OKS": norfair_factory("oks"),
        "norfair + keypoint voting": norfair_factory("voting"),
    }
    scenes = [(fps, crowd_scene(people=6, seconds=20, fps=fps, seed=s)) for fps in (30.0, 10.0) for s in (1, 2, 3)]
    print(f"running PoseNet on {VIDEO.name} ...", file=sys.stderr)
    vid = video_poses(args.frames) if MODEL.exists() and VIDEO.exists() else []
    rows = []
    for name, make in trackers.items():
        if make is None:
            rows.append((name, None))
            continue
        secs = nframes = 0
        sw = 0
        ipp = []
        for fps, (ts, frames, truth) in scenes:
            fr = copy_frames(frames)
            secs += run(make, fr, ts, fps)
            nframes += len(fr)
            r = score_against_truth(truth, [[p.track_id for p in f] for f in fr])
            sw += r.id_switches
            ipp.append(r.ids_per_person)
        vres = []
        for stride in (1, 3):
            fr = copy_frames(vid[::stride])
            ts = [k * stride / 50.0 for k in range(len(fr))]
            secs += run(make, fr, ts, 50.0 / stride)
            nframes += len(fr)
            pairs = continuity_pairs(fr)
            ids = Counter(p.track_id for f in fr for p in f if p.score >= 0.5 and p.track_id is not None)
            vres.append((continuity_breaks(fr, pairs), len(pairs), len(ids)))
        rows.append((name, (sw, float(np.mean(ipp)), vres, 1e6 * secs / max(nframes, 1))))
    base = rows[0][1][3]
    cells = []
    for name, r in rows:
        if r is None:
            cells.append([name, "(not installed)", *[""] * 7])
            continue
        sw, ipp, v, us = r
        (b1, p1, i1), (b3, p3, i3) = v
        cells.append(
            [
                name,
                str(sw),
                f"{ipp:.2f}",
                f"{b1}/{p1}",
                str(i1),
                f"{b3}/{p3}",
                str(i3),
                f"{us:.0f}",
                f"{base / us:.1f}x",
            ]
        )
    table(
        "Trackers: synthetic crowds and the shared video",
        [
            "tracker",
            "synth switches",
            "IDs/person",
            "video breaks 50fps",
            "IDs",
            "breaks 17fps",
            "IDs",
            "us/frame",
            "speed-up",
        ],
        cells,
        "lrrrrrrrr",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
