"""Capture and drawing benchmark.

    python benchmarks/capture_bench.py [--model 353_481] [--draw-repeat 200]

Prints three tables:
1. reading the shared 1280x720 clip (205 frames): decoding alone, direct vs the
   prefetching reader, then with the real PoseNet model (Coral 353x481, CPU) run on
   every frame: direct (decode, then infer) vs prefetching (decode of the next frame
   overlaps inference) vs the latest-frame reader (frames the model is too slow for
   are dropped);
2. a network camera simulated by frames arriving at 50 fps into a buffer (as FFmpeg
   buffers RTSP): how old a frame is when the model starts on it (latency), reading
   directly (a backlog builds up) vs through the latest-frame reader;
3. drawing cost per 1280x720 frame for 1, 5 and 10 people (skeletons, keypoints,
   labels; plus the HUD), ratios against 1 person.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared

VIDEO = SHARED / "video" / "openpose_video.avi"

from benchmarks.baselines.tables import table  # noqa: E402
from edgepose.draw import draw_hud, draw_poses  # noqa: E402
from edgepose.sources import FrameSource, LatestFrameReader, PrefetchReader, VideoFileSource  # noqa: E402
from edgepose.types import Frame, Pose  # noqa: E402


def load_model(size: str) -> tuple[Callable[[np.ndarray], object], str]:
    path = SHARED / "models" / "coral" / f"posenet_mobilenet_v1_075_{size}_quant.tflite"
    try:
        from edgepose.model.posenet import load_posenet

        model = load_posenet(str(path), threads=2)
        return model.infer, f"PoseNet {size} (2 threads)"
    except Exception as e:  # pragma: no cover - the model module ships with edgepose
        print(f"(model unavailable: {e}; using a 30 ms sleep as the model)")
        return (lambda img: time.sleep(0.03)), "sleep 30 ms"


def consume(src: FrameSource, work: Callable[[np.ndarray], object] | None) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    with src:
        for f in src:
            if work is not None:
                work(f.image)
            n += 1
    return n, time.perf_counter() - t


class Paced(FrameSource):
    """A network camera stand-in: frames arrive at 50 fps into the stream's buffer whether or not
    anyone reads them (as FFmpeg buffers an RTSP stream), and ``read()`` returns the oldest
    unread one, stamped with when it arrived. Frames are pre-decoded so that decoding does not
    compete with the model in this measurement."""

    is_live = True
    close_from_other_thread = False

    def __init__(self, frames: list[np.ndarray], fps: float, seconds: float):
        self.frames = frames
        self.fps = fps
        self.description = f"paced clip @ {fps:g} fps"
        self.t0 = time.perf_counter()
        self.n = 0
        self.end = self.t0 + seconds

    def read(self) -> Frame | None:
        due = self.t0 + self.n / self.fps
        if due > self.end:
            return None
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        img = self.frames[self.n % len(self.frames)]
        self.n += 1
        return Frame(self.n - 1, due, img)


def predecode(n: int, size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    for _ in range(n):
        ok, img = cap.read()
        if not ok:
            break
        out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    cap.release()
    return out


def live_latency(src: FrameSource, work: Callable[[np.ndarray], object]) -> tuple[int, float, float, int]:
    lat = []
    with src:
        for f in src:
            lat.append(time.perf_counter() - f.timestamp)
            work(f.image)
    dropped = int(getattr(src, "dropped", 0))
    return len(lat), 1e3 * statistics.mean(lat), 1e3 * max(lat), dropped


def crowd(n: int, w: int = 1280, h: int = 720, seed: int = 0) -> list[Pose]:
    """n stick figures spread over the frame, random part scores, tracked (labels drawn)."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [
            [0, 0],
            [6, -6],
            [-6, -6],
            [12, -2],
            [-12, -2],
            [35, 45],
            [-35, 45],
            [50, 100],
            [-50, 100],
            [55, 150],
            [-55, 150],
            [25, 155],
            [-25, 155],
            [27, 235],
            [-27, 235],
            [29, 310],
            [-29, 310],
        ],
        np.float32,
    )
    poses = []
    for i in range(n):
        off = np.array([80 + (i * 117) % (w - 160), 60 + (i * 53) % (h - 380)], np.float32)
        kp = base + off + rng.normal(0, 3, base.shape).astype(np.float32)
        scores = rng.uniform(0.3, 1.0, 17).astype(np.float32)
        pose = Pose(kp, scores, float(scores.mean()), track_id=i + 1)
        pose.extra["actions"] = ["standing"] if i % 2 else []
        poses.append(pose)
    return poses


def time_draw(img: np.ndarray, poses: list[Pose], repeat: int, hud: bool) -> tuple[float, float]:
    buf = img.copy()
    ts = []
    for _ in range(repeat):
        np.copyto(buf, img)  # fresh frame each time, not timed
        t = time.perf_counter()
        draw_poses(buf, poses)
        if hud:
            draw_hud(buf, [f"FPS {12.3:.1f}", f"people {len(poses)}", "infer 45.1 decode 2.0"])
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts), 1e3 * min(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="353_481", choices=["353_481", "481_641", "721_1281"])
    ap.add_argument("--draw-repeat", type=int, default=200)
    ap.add_argument("--live-seconds", type=float, default=4.0)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # like a small board: decoding must not steal the model's cores
    work, model_name = load_model(args.model)
    work(np.zeros((720, 1280, 3), np.uint8))  # warm-up

    rows = []
    n, t_direct = consume(VideoFileSource(VIDEO), None)
    rows.append(("decode only, direct", n, t_direct, 0))
    n, t = consume(PrefetchReader(VideoFileSource(VIDEO), 2), None)
    rows.append(("decode only, PrefetchReader(2)", n, t, 0))
    n, t_serial = consume(VideoFileSource(VIDEO), work)
    rows.append(("decode + model, direct", n, t_serial, 0))
    n, t = consume(PrefetchReader(VideoFileSource(VIDEO), 2), work)
    rows.append(("decode + model, PrefetchReader(2)", n, t, 0))
    latest = LatestFrameReader(VideoFileSource(VIDEO))
    n, t = consume(latest, work)
    rows.append(("decode + model, LatestFrameReader", n, t, latest.dropped))
    cells = []
    for name, n, t, dropped in rows:
        base = t_direct if name.startswith("decode only") else t_serial
        ratio = f"{base / t * n / 205:.2f}x" if not dropped else "n/a"
        cells.append([name, str(n), str(dropped), f"{1e3 * t / n:.2f}", f"{n / t:.1f}", ratio])
    table(
        f"1. Reading {VIDEO.name} (1280x720, 205 frames); model: {model_name}",
        ["reader", "frames", "dropped", "ms/frame", "fps", "vs direct"],
        cells,
        "lrrrrr",
    )
    print(
        "(vs direct: frames/s against the direct row of the same kind. The latest-frame reader is for live\n"
        " sources: on a file its thread decodes flat out, and every frame the model was busy for is dropped.)"
    )

    clip = predecode(100)
    base_mean = None
    cells = []
    for name, make in (
        ("direct (queue grows)", lambda: Paced(clip, 50.0, args.live_seconds)),
        ("LatestFrameReader", lambda: LatestFrameReader(Paced(clip, 50.0, args.live_seconds))),
    ):
        n, mean, worst, dropped = live_latency(make(), work)
        base_mean = base_mean or mean
        cells.append([name, str(n), str(dropped), f"{mean:.1f}", f"{worst:.1f}", f"{base_mean / mean:.1f}x"])
    table(
        f"2. Network camera simulated at 50 fps (640x360) for {args.live_seconds:g} s, model on every frame it gets",
        ["reader", "processed", "dropped", "mean latency ms", "max latency ms", "mean latency: x lower than direct"],
        cells,
        "lrrrrr",
    )

    cap = cv2.VideoCapture(str(VIDEO))
    ok, img = cap.read()
    cap.release()
    assert ok
    one = None
    cells = []
    for n in (1, 5, 10):
        poses = crowd(n)
        d, dmin = time_draw(img, poses, args.draw_repeat, hud=False)
        dh, dhmin = time_draw(img, poses, args.draw_repeat, hud=True)
        one = one or dmin
        cells.append([str(n), f"{d:.3f} / {dmin:.3f}", f"{dh:.3f} / {dhmin:.3f}", f"{dmin / one:.2f}x"])
    table(
        f"3. Drawing on a 1280x720 frame (median of {args.draw_repeat}, cv2 only)",
        ["people", "draw_poses ms (median/min)", "+ draw_hud ms (median/min)", "vs 1 person"],
        cells,
        "rrrr",
    )
    print("(min is the better estimate on a busy machine; ratios use it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
