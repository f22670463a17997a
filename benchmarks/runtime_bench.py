"""Runtime benchmark: per-stage latency, decode speed against posenet-python, pipeline overhead.

    python benchmarks/runtime_bench.py [--frames 60] [--repeat 30]

Prints three tables:
1. per-stage latency (pre-process, invoke, decode, draw, write; median / p90 ms) for the
   three Coral models at 1 and 2 threads, on the shared video and on test_couple.jpg;
2. decode alone for 1..10 poses at 481x641 on the most crowded video frame: edgepose's
   decoder beside posenet-python's (ported in benchmarks/baselines, run in this process),
   and how many of Coral's 34 reference keypoints each reproduces;
3. the video pipeline's overhead: everything except ``invoke`` as a share of ``invoke``
   (reading and pre-processing the next frame overlap inference).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
VIDEO = SHARED / "video" / "openpose_video.avi"
COUPLE = SHARED / "images" / "test_couple.jpg"
SIZES = ("353_481", "481_641", "721_1281")

from benchmarks.baselines import posenet_python  # noqa: E402
from edgepose.config import EdgeposeConfig  # noqa: E402
from edgepose.decode.multi import decode_multiple_poses  # noqa: E402
from edgepose.decode.single import decode_single_pose  # noqa: E402
from edgepose.draw import draw_poses  # noqa: E402
from edgepose.model.posenet import load_posenet  # noqa: E402
from edgepose.pipeline import Pipeline  # noqa: E402
from edgepose.sinks.video import VideoSink  # noqa: E402
from edgepose.sources import open_source  # noqa: E402
from edgepose.types import KEYPOINT_NAMES  # noqa: E402


def model_path(size: str, kind: str = "quant") -> Path:
    return SHARED / "models" / "coral" / f"posenet_mobilenet_v1_075_{size}_{kind}.tflite"


def ms(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values) * 1e3
    return float(np.median(a)), float(np.percentile(a, 90))


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def read_frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def stage_latency(size: str, threads: int, frames: list[np.ndarray], couple: np.ndarray, repeat: int) -> list[list[str]]:
    model = load_posenet(model_path(size), threads)
    rows = []
    for label, images in (("video", frames), ("couple", [couple] * repeat)):
        t: dict[str, list[float]] = {k: [] for k in ("pre", "invoke", "decode", "draw", "write")}
        people = []
        with tempfile.TemporaryDirectory() as tmp:
            sink = VideoSink(Path(tmp) / "out.mp4", 10.0, (images[0].shape[1], images[0].shape[0]))
            for img in images:
                t0 = time.perf_counter()
                tensor, tr = model.preprocess(img)
                t1 = time.perf_counter()
                model.invoke(tensor)
                t2 = time.perf_counter()
                poses = model.decode(model.heads(), tr, 10, 0.25, 20.0)
                t3 = time.perf_counter()
                out = draw_poses(img, poses, 0.25, 0.25, copy=True)
                t4 = time.perf_counter()
                sink.write(out)
                t5 = time.perf_counter()
                for k, a, b in (("pre", t0, t1), ("invoke", t1, t2), ("decode", t2, t3), ("draw", t3, t4), ("write", t4, t5)):
                    t[k].append(b - a)
                people.append(len(poses))
            sink.close()
        cells = [f"{size.replace('_', 'x')}", str(threads), label, f"{np.mean(people):.1f}"]
        for k in t:
            med, p90 = ms(t[k])
            cells.append(f"{med:.2f}/{p90:.2f}")
        rows.append(cells)
    return rows


def coral_reference(size: str) -> np.ndarray:
    import csv

    out = np.zeros((2, 17, 3), np.float32)
    for r in csv.DictReader(open(SHARED / "reference" / "coral" / f"posenet_mobilenet_v1_075_{size}_quant_decoder_reference.csv")):
        out[int(r["pose_id"]), KEYPOINT_NAMES.index(r["keypoint_label"].lower())] = float(r["keypoint_x"]), float(r["keypoint_y"]), float(r["keypoint_score"])
    return out


def conformance(yx: np.ndarray, scores: np.ndarray, ref: np.ndarray) -> int:
    """Reference keypoints reproduced within 4 px and 0.1 score, each reference person
    compared with the decoded pose closest to it (decoders may order poses differently)."""
    ok = 0
    for r in ref:
        if not len(yx):
            break
        i = int(np.argmin([np.abs(p[:, ::-1] - r[:, :2]).mean() for p in yx]))
        dxy = np.abs(yx[i][:, ::-1] - r[:, :2]).max(axis=1)
        ok += int(((dxy <= 4) & (np.abs(scores[i] - r[:, 2]) <= 0.1)).sum())
    return ok


def timeit(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return float(np.median(samples) * 1e3)


def decode_table(frames: list[np.ndarray], repeat: int) -> list[list[str]]:
    model = load_posenet(model_path("481_641"), 2)
    crowded = max(frames, key=lambda f: len(model.estimate(f, 10, 0.25, 20.0)))
    heads, _ = model.infer(crowded)
    probs = 1.0 / (1.0 + np.exp(-heads.heatmaps))
    fwd, bwd = heads.displacements[..., :32], heads.displacements[..., 32:]
    rows = []
    for k in range(1, 11):
        found = len(decode_multiple_poses(heads, k, 0.25, 20.0))
        ours = timeit(lambda: decode_multiple_poses(heads, k, 0.25, 20.0), repeat)
        base = timeit(lambda: posenet_python.decode_multiple_poses(probs, heads.offsets, fwd, bwd, 16, k, 0.25, 20, 0.25), repeat)
        rows.append([str(k), str(found), f"{ours:.3f}", f"{base:.3f}", f"{base / ours:.1f}x"])
    single = timeit(lambda: decode_single_pose(heads), repeat)
    rows.append(["single", "1", f"{single:.3f}", "-", "-"])
    # Conformance on Coral's reference (decoder-op model, its own settings).
    dm = load_posenet(model_path("481_641", "quant_decoder"), 2, resize_filter="nearest")
    img = cv2.resize(cv2.imread(str(COUPLE)), (dm.input_width, dm.input_height), interpolation=cv2.INTER_NEAREST_EXACT)
    h, _ = dm.infer(img)
    ref = coral_reference("481_641")
    ours = decode_multiple_poses(h, 10, 0.2, 10.0)
    p = 1.0 / (1.0 + np.exp(-h.heatmaps))
    _, bs, bc = posenet_python.decode_multiple_poses(p, h.offsets, h.displacements[..., :32], h.displacements[..., 32:], 16, 10, 0.2, 10, 0.2)
    rows.append(["Coral ref", "2", f"{conformance(ours.keypoints_yx, ours.keypoint_scores, ref)}/34 match", f"{conformance(bc, bs, ref)}/34 match", ""])
    return rows


def pipeline_overhead(size: str, threads: int, n: int) -> list[str]:
    cfg = EdgeposeConfig.model_validate({"model": {"path": str(model_path(size)), "threads": threads}, "actions": {"enabled": False}})
    pipe = Pipeline(cfg)
    invoke = []
    with open_source(str(VIDEO), prefetch=2) as src:
        t0 = time.perf_counter()
        count = 0
        for res in pipe.run(src, max_frames=n):
            invoke.append(res.timings["invoke"])
            count += 1
        wall = time.perf_counter() - t0
    inv = sum(invoke)
    return [size.replace("_", "x"), str(threads), str(count), f"{1e3 * wall / count:.1f}", f"{1e3 * inv / count:.1f}", f"{100 * (wall - inv) / inv:.1f} %"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60, help="video frames per measurement")
    ap.add_argument("--repeat", type=int, default=30, help="repetitions for image and decode timings")
    ap.add_argument("--sizes", default=",".join(SIZES))
    args = ap.parse_args()
    sizes = args.sizes.split(",")
    frames = read_frames(args.frames)
    couple = cv2.imread(str(COUPLE))
    rows = []
    for size in sizes:
        for threads in (1, 2):
            rows += stage_latency(size, threads, frames, couple, args.repeat)
    table("1. Per-stage latency, ms median/p90 (draw and write at source resolution)",
          ["model", "thr", "input", "people", "pre", "invoke", "decode", "draw", "write"], rows)
    table("2. Decode alone, 481x641, most crowded video frame (ms median; baseline: posenet-python)",
          ["max poses", "found", "edgepose", "posenet-python", "speed-up"], decode_table(frames, args.repeat))
    table("3. Video pipeline: everything except invoke as a share of invoke (prefetch on)",
          ["model", "thr", "frames", "wall ms/frame", "invoke ms/frame", "overhead"],
          [pipeline_overhead(s, t, args.frames) for s in sizes for t in (1, 2)])


if __name__ == "__main__":
    main()
