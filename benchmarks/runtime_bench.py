"""Runtime benchmark: per-stage latency, decode speed against posenet-python, pipeline overhead.

    python benchmarks/runtime_bench.py [--frames 60] [--repeat 30]

Prints three tables:
1. per-stage latency (pre-process, invoke, decode, draw, write; median / p90 ms) for the
   three Coral models at 1 and 2 threads, on the shared video and on test_couple.jpg;
2. decode alone for 1..10 poses at 481x641 on the most crowded video frame: edgepose's
   decoder beside posenet-python's (ported in benchmarks/baselines, run in this process),
   and how many of Coral's 34 reference keypoints each reproduces;
3. the video pipeline's overhead: everything except ``invoke`` as a share of ``invoke``, against
   the invoke time inside the run and against invoke alone (same process), at 1 and 2 threads,
   bare, with sinks (JSONL, drawing, video) overlapping the next invoke, and fully serial;
4. Coral's conformance test through ``edgepose run`` with default flags (the model's own decoder
   settings) and with the former fixed 0.25 / 20 px, with the settings in force and their origin.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared

VIDEO = SHARED / "video" / "openpose_video.avi"
COUPLE = SHARED / "images" / "test_couple.jpg"
SIZES = ("353_481", "481_641", "721_1281")

from benchmarks.baselines import posenet_python  # noqa: E402
from benchmarks.baselines.tables import table  # noqa: E402
from edgepose.config import EdgeposeConfig  # noqa: E402
from edgepose.decode import select_decoder  # noqa: E402
from edgepose.decode.single import decode_single_pose  # noqa: E402
from edgepose.draw import draw_poses  # noqa: E402
from edgepose.model.posenet import load_posenet  # noqa: E402
from edgepose.pipeline import Pipeline  # noqa: E402
from edgepose.sinks.video import VideoSink  # noqa: E402
from edgepose.sources import open_source  # noqa: E402
from edgepose.types import KEYPOINT_NAMES  # noqa: E402
from tests.reference import matches_reference, reference, reference_csv  # noqa: E402

# The decoder 'edgepose run' picks (numba where it loads, else numpy): the user's path.
DECODER_NAME, decode_multiple_poses = select_decoder()


def model_path(size: str, kind: str = "quant") -> Path:
    return SHARED / "models" / "coral" / f"posenet_mobilenet_v1_075_{size}_{kind}.tflite"


def ms(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values) * 1e3
    return float(np.median(a)), float(np.percentile(a, 90))


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


def stage_latency(
    size: str, threads: int, frames: list[np.ndarray], couple: np.ndarray, repeat: int
) -> list[list[str]]:
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
                for k, a, b in (
                    ("pre", t0, t1),
                    ("invoke", t1, t2),
                    ("decode", t2, t3),
                    ("draw", t3, t4),
                    ("write", t4, t5),
                ):
                    t[k].append(b - a)
                people.append(len(poses))
            sink.close()
        cells = [f"{size.replace('_', 'x')}", str(threads), label, f"{np.mean(people):.1f}"]
        for k in t:
            med, p90 = ms(t[k])
            cells.append(f"{med:.2f}/{p90:.2f}")
        rows.append(cells)
    return rows


def conformance(yx: np.ndarray, scores: np.ndarray, ref: list) -> int:
    """Reference keypoints reproduced (tests.reference.matches_reference), each reference person
    compared with the decoded pose closest to it (decoders may order poses differently)."""
    return matches_reference([p[:, ::-1] for p in yx], scores, ref, in_order=False)


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
        base = timeit(
            lambda: posenet_python.decode_multiple_poses(probs, heads.offsets, fwd, bwd, 16, k, 0.25, 20, 0.25), repeat
        )
        rows.append([str(k), str(found), f"{ours:.3f}", f"{base:.3f}", f"{base / ours:.1f}x"])
    single = timeit(lambda: decode_single_pose(heads), repeat)
    rows.append(["single", "1", f"{single:.3f}", "-", "-"])  # argmax decoder, numpy
    # Conformance on Coral's reference (decoder-op model, its own settings).
    dm = load_posenet(model_path("481_641", "quant_decoder"), 2, resize_filter="nearest")
    img = cv2.resize(cv2.imread(str(COUPLE)), (dm.input_width, dm.input_height), interpolation=cv2.INTER_NEAREST_EXACT)
    h, _ = dm.infer(img)
    ref = reference(reference_csv("481_641"))
    ours = decode_multiple_poses(h, 10, 0.2, 10.0)
    p = 1.0 / (1.0 + np.exp(-h.heatmaps))
    _, bs, bc = posenet_python.decode_multiple_poses(
        p, h.offsets, h.displacements[..., :32], h.displacements[..., 32:], 16, 10, 0.2, 10, 0.2
    )
    rows.append(
        [
            "Coral ref",
            "2",
            f"{conformance(ours.keypoints_yx, ours.keypoint_scores, ref)}/34 match",
            f"{conformance(bc, bs, ref)}/34 match",
            "",
        ]
    )
    return rows


def _process_cpu() -> float:
    return time.process_time()  # all threads: the interpreter's workers and the frame reader


def _invoke_alone(model, tensors: list[np.ndarray]) -> tuple[float, float]:
    """Mean (wall, process CPU) seconds per invoke with nothing else running (the overhead's baseline)."""
    model.invoke(tensors[0])
    t, c = time.perf_counter(), _process_cpu()
    for x in tensors:
        model.invoke(x)
    return (time.perf_counter() - t) / len(tensors), (_process_cpu() - c) / len(tensors)


def pipeline_overhead(size: str, threads: int, frames: list[np.ndarray], n: int, mode: str) -> list[str]:
    """One row: the video through the pipeline as ``edgepose run`` drives it.

    ``mode``: ``pipeline`` (read, pre-process, invoke, decode, track), ``+sinks`` (also the JSONL
    record and drawing the skeletons in the caller's thread, overlapping the next invoke), ``serial``
    (the same as ``+sinks`` with every stage one after the other, for comparison). Video encoding is
    left out: mp4v at 1280x720 alone costs about as much as a 353x481 invoke (table 1, ``write``).
    """
    from edgepose.draw import ActionLabels
    from edgepose.sinks.jsonl import JsonlSink

    cfg = EdgeposeConfig.model_validate(
        {"model": {"path": str(model_path(size)), "threads": threads}, "actions": {"enabled": False}}
    )
    pipe = Pipeline(cfg)
    tensors = [pipe.model.preprocess(f)[0] for f in frames[:10]] * 2
    alone, alone_cpu = _invoke_alone(pipe.model, tensors)
    sinks = mode != "pipeline"
    stage: dict[str, list[float]] = {}
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = JsonlSink(str(Path(tmp) / "out.jsonl")) if sinks else None
        labels = ActionLabels()
        # Files open with the config's prefetch: the pipeline's one read-and-pre-process thread.
        with open_source(str(VIDEO), prefetch=0 if mode == "serial" else 2) as src:
            if mode == "serial":

                def serial():
                    for i, frame in enumerate(src):
                        if i >= n:
                            return
                        yield pipe.process(frame, keep_image=True)

                results = serial()
            else:
                results = pipe.run(src, keep_image=sinks, max_frames=n)
            t0, c0 = time.perf_counter(), _process_cpu()
            for res in results:
                t = time.perf_counter()
                if sinks:
                    jsonl.write(res)  # type: ignore[union-attr]
                    t1 = time.perf_counter()
                    draw_poses(res.image, res.poses, labels=labels.update(res.events, res.timestamp))
                    res.timings.update(jsonl=t1 - t, draw=time.perf_counter() - t1)
                for k, v in res.timings.items():
                    stage.setdefault(k, []).append(v)
                count += 1
            wall, cpu = time.perf_counter() - t0, _process_cpu() - c0
        if jsonl is not None:
            jsonl.close()
    after, after_cpu = _invoke_alone(pipe.model, tensors)
    alone, alone_cpu = 0.5 * (alone + after), 0.5 * (alone_cpu + after_cpu)  # before and after: load drifts
    inv = sum(stage["invoke"]) / count
    per = wall / count
    # The least 'vs alone' this machine allows: the CPU spent on everything but invoke (the run's
    # process CPU less invoke's CPU alone) has to fit beside invoke's own on os.cpu_count() cores.
    other_cpu = max(0.0, cpu / count - alone_cpu)
    bound = max(alone, (alone_cpu + other_cpu) / (os.cpu_count() or 1)) / alone - 1
    meds = " ".join(f"{k} {1e3 * statistics.median(v):.2f}" for k, v in stage.items() if k != "invoke")
    return [
        size.replace("_", "x"),
        str(threads),
        mode,
        str(count),
        f"{1e3 * per:.1f}",
        f"{1e3 * inv:.1f}",
        f"{100 * (per - inv) / inv:.1f} %",
        f"{1e3 * alone:.1f}",
        f"{100 * (per - alone) / alone:.1f} %",
        f"{1e3 * other_cpu:.1f}",
        f"{100 * bound:.1f} %",
        meds,
    ]


def decoder_settings_rows() -> list[list[str]]:
    """Coral's conformance test through ``edgepose run`` (default flags) on each decoder model, and with
    the CLI's former fixed defaults (0.25, 20 px) that overrode the model's own settings."""
    import contextlib
    import io
    import json

    from edgepose.cli import main as cli

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            h, w = (int(v) for v in size.split("_"))
            png = Path(tmp) / f"couple_{size}.png"
            # Coral's test resizes with PIL's nearest neighbour (= INTER_NEAREST_EXACT); the CLI's resize is then a no-op.
            cv2.imwrite(str(png), cv2.resize(cv2.imread(str(COUPLE)), (w, h), interpolation=cv2.INTER_NEAREST_EXACT))
            ref = reference(reference_csv(size))
            cells = [size.replace("_", "x")]
            for flags in ([], ["--min-pose-score", "0.25", "--nms-radius", "20"]):
                out = Path(tmp) / "out.jsonl"
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    cli(
                        [
                            "run",
                            "--model",
                            str(model_path(size, "quant_decoder")),
                            "--source",
                            str(png),
                            "--jsonl",
                            str(out),
                            *flags,
                        ]
                    )
                people = json.loads(out.read_text().splitlines()[0])["people"]
                yx = np.array([[p["keypoints"][k][1::-1] for k in KEYPOINT_NAMES] for p in people], np.float32)
                sc = np.array([[p["keypoints"][k][2] for k in KEYPOINT_NAMES] for p in people], np.float32)
                cells.append(f"{conformance(yx, sc, ref)}/34")
                if not flags:
                    settings = next(ln for ln in err.getvalue().splitlines() if ln.startswith("decoder:"))
            cells.append(settings.removeprefix("decoder: "))
            rows.append(cells)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40, help="video frames per measurement")
    ap.add_argument("--repeat", type=int, default=30, help="repetitions for image and decode timings")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--tables", default="1,2,3,4", help="which tables to print (comma list)")
    args = ap.parse_args()
    sizes = args.sizes.split(",")
    which = set(args.tables.split(","))
    frames = read_frames(args.frames)
    couple = cv2.imread(str(COUPLE))
    if "1" in which:
        rows = []
        for size in sizes:
            for threads in (1, 2):
                rows += stage_latency(size, threads, frames, couple, args.repeat)
        table(
            "1. Per-stage latency, ms median/p90 (draw and write at source resolution)",
            ["model", "thr", "input", "people", "pre", "invoke", "decode", "draw", "write"],
            rows,
        )
    if "2" in which:
        table(
            "2. Decode alone, 481x641, most crowded video frame (ms median; edgepose = the decoder run picks: "
            + DECODER_NAME
            + "; baseline: posenet-python)",
            ["max poses", "found", "edgepose", "posenet-python", "speed-up"],
            decode_table(frames, args.repeat),
        )
    if "3" in which:
        table(
            "3. Video pipeline (tracking on, actions off): everything but invoke as a share of invoke; "
            "'alone' = invoke with nothing else running, same process; 'other CPU' = the run's process CPU per frame less "
            "invoke's alone; 'least vs alone' = the overhead that CPU forces on this machine's "
            f"{os.cpu_count()} cores even perfectly overlapped; stage medians in ms",
            [
                "model",
                "thr",
                "mode",
                "frames",
                "wall ms/frame",
                "invoke in run",
                "overhead",
                "invoke alone",
                "vs alone",
                "other CPU ms",
                "least vs alone",
                "stage medians",
            ],
            [
                pipeline_overhead(s, t, frames, args.frames, mode)
                for s in sizes
                for t in (1, 2)
                for mode in ("pipeline", "+sinks", "serial")
            ],
        )
    if "4" in which:
        table(
            "4. Coral conformance through 'edgepose run' (default flags; image pre-resized with nearest neighbour as Coral's test does)",
            ["model", "default flags", "0.25 / 20 px flags", "decoder settings in force (default flags)"],
            decoder_settings_rows(),
        )
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"\nload average at the end (1/5/15 min): {' '.join(load)} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
