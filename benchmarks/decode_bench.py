"""Multi-pose decoder benchmark: compiled (numba) and numpy decoders against posenet-python.

    python benchmarks/decode_bench.py [--repeat 200]

Decodes the heads of the most crowded frame of ../shared/video/openpose_video.avi
(most poses found with no cap; Coral's 481x641 model; score 0.25 and NMS 20 px as
`edgepose run` by default) with
edgepose's compiled decoder, its numpy decoder (the reference) and
posenet-python's ``decode_multiple_poses`` (ported in benchmarks/baselines),
in this process, round-robin so that load on the machine hits all three alike.

Prints:
1. median ms per decode for 1, 5 and 10 poses, and the ratios (targets, issue 12:
   >= 15x posenet-python at 10 poses; <= 0.15 ms for 1 pose; Coral's C++
   PosenetDecoderOp: 0.063 ms, quoted, it cannot run here);
2. agreement: the compiled and numpy decoders on every frame of the video
   (largest coordinate / score difference) and Coral's reference on test_couple.jpg;
3. the compiled decoder's first-call cost in fresh processes: import, compile
   with an empty cache, then load from that cache (what `edgepose run`/`serve`
   pay once at model load, not on a frame).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
MODEL = SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_481_641_quant.tflite"
DECODER_MODEL = SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_481_641_quant_decoder.tflite"
CORAL_CPP_MS = 0.063

from benchmarks.baselines import posenet_python  # noqa: E402
from benchmarks.baselines.tables import table  # noqa: E402
from edgepose.decode import compiled, multi  # noqa: E402
from edgepose.model.posenet import load_posenet  # noqa: E402
from tests.reference import matches_reference, reference, reference_csv  # noqa: E402

SETTINGS = (0.25, 20.0)  # min pose score, NMS radius (px): edgepose's defaults


def video_heads(model) -> list:
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(model.infer(frame)[0])
    cap.release()
    return out


def timing_table(heads, repeat: int) -> list[list[str]]:
    probs = 1.0 / (1.0 + np.exp(-heads.heatmaps))
    fwd, bwd = heads.displacements[..., :32], heads.displacements[..., 32:]
    rows = []
    for k in (1, 5, 10):
        fns = {
            "numba": lambda k=k: compiled.decode_multiple_poses(heads, k, *SETTINGS),
            "numpy": lambda k=k: multi.decode_multiple_poses(heads, k, *SETTINGS),
            "posenet-python": lambda k=k: posenet_python.decode_multiple_poses(
                probs, heads.offsets, fwd, bwd, heads.stride, k, SETTINGS[0], SETTINGS[1], SETTINGS[0]
            ),
        }
        found = {name: len(fn()[0] if name == "posenet-python" else fn()) for name, fn in fns.items()}
        samples: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeat):  # round-robin: a busy moment costs all three alike
            for name, fn in fns.items():
                t = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t)
        med = {name: 1e3 * statistics.median(s) for name, s in samples.items()}
        rows.append(
            [
                str(k),
                f"{found['numba']}/{found['numpy']}/{found['posenet-python']}",
                f"{med['numba']:.3f}",
                f"{med['numpy']:.3f}",
                f"{med['posenet-python']:.3f}",
                f"{med['posenet-python'] / med['numba']:.1f}x",
                f"{med['posenet-python'] / med['numpy']:.1f}x",
                f"{med['numpy'] / med['numba']:.1f}x",
                f"{med['numba'] / CORAL_CPP_MS:.1f}x",
            ]
        )
    return rows


def agreement(all_heads) -> list[list[str]]:
    rows = []
    for k, score, radius in ((10, *SETTINGS), (10, 0.1, 10.0), (3, 0.5, 30.0)):
        same, poses, worst_px, worst_s = 0, 0, 0.0, 0.0
        for h in all_heads:
            a = multi.decode_multiple_poses(h, k, score, radius)
            b = compiled.decode_multiple_poses(h, k, score, radius)
            if len(a) == len(b):
                same += 1
                poses += len(a)
                if len(a):
                    worst_px = max(worst_px, float(np.abs(a.keypoints_yx - b.keypoints_yx).max()))
                    worst_s = max(
                        worst_s,
                        float(np.abs(a.keypoint_scores - b.keypoint_scores).max()),
                        float(np.abs(a.pose_scores - b.pose_scores).max()),
                    )
        rows.append(
            [f"{k} / {score} / {radius:g}", f"{same}/{len(all_heads)}", str(poses), f"{worst_px:.2g}", f"{worst_s:.2g}"]
        )
    return rows


def coral_reference() -> list[list[str]]:
    ref = reference(reference_csv("481_641"))
    m = load_posenet(DECODER_MODEL, 2, resize_filter="nearest")
    img = cv2.resize(cv2.imread(str(COUPLE)), (m.input_width, m.input_height), interpolation=cv2.INTER_NEAREST_EXACT)
    h, _ = m.infer(img)
    s = m.decoder_settings()
    row = []
    for dec in (compiled, multi):
        d = dec.decode_multiple_poses(h, s["max_poses"], s["min_pose_score"], s["nms_radius"])
        ok = matches_reference([p[:, ::-1] for p in d.keypoints_yx], d.keypoint_scores, ref)
        row.append(f"{ok}/34")
    return [row]


_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from edgepose.decode import compiled
t1 = time.perf_counter()
dt, how = compiled.warm_up()
print(json.dumps({"import": t1 - t0, "first": dt, "how": how}))
"""


def first_call() -> list[list[str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgepose-numba-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(REPO))
        for label in ("empty cache", "warm cache", "warm cache"):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append([label, f"{1e3 * r['import']:.0f}", f"{1e3 * r['first']:.0f}", r["how"]])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200, help="timed decodes per decoder and pose count")
    args = ap.parse_args()
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    compiled.warm_up()
    model = load_posenet(MODEL, 2)
    all_heads = video_heads(model)
    # The most people found with no cap (ties: the first), so that 10 poses are there to find.
    counts = [len(compiled.decode_multiple_poses(h, 100, *SETTINGS)) for h in all_heads]
    crowded = int(np.argmax(counts))
    print(
        f"machine: {os.cpu_count()} cores, load average {load0[0]:.1f} at start; "
        f"most crowded frame: #{crowded} of {len(all_heads)} ({counts[crowded]} poses at score {SETTINGS[0]}, NMS {SETTINGS[1]:g} px, no cap)"
    )
    table(
        f"1. Decode, 481x641 heads of frame #{crowded}, median ms of {args.repeat} (targets: >= 15x posenet-python at 10 poses, <= 0.15 ms at 1)",
        [
            "max poses",
            "found nb/np/pp",
            "numba",
            "numpy",
            "posenet-python",
            "pp/numba",
            "pp/numpy",
            "numpy/numba",
            "numba/Coral C++",
        ],
        timing_table(all_heads[crowded], args.repeat),
    )
    table(
        f"2. Agreement, numba vs numpy on all {len(all_heads)} video frames (max poses / min score / NMS px)",
        ["settings", "same pose count", "poses", "max |d| px", "max |d| score"],
        agreement(all_heads),
    )
    table(
        "   Coral's reference (test_couple.jpg, decoder-op settings), keypoints within 4 px and 0.1",
        ["numba", "numpy"],
        coral_reference(),
    )
    table(
        "3. Compiled decoder's first call in a fresh process (ms); paid at model load",
        ["run", "import", "first decode", "how"],
        first_call(),
    )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t_start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
