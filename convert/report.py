"""The fidelity report: what each conversion step cost in accuracy, size and speed.

* float32 ``.tflite`` vs the source graph run by TensorFlow: max |difference| per output.
* every other model vs float32 on held-out images (never the calibration set):
  share of confident keypoints (float32 score > 0.5) within 2 px and 5 px, mean and
  p95 pixel error (model-input pixels), poses found per image.
* file size, and invoke latency on this machine.

Poses come from the edgepose runtime itself (:func:`edgepose.model.posenet.load_posenet`,
no flags) on the full-size held-out images, pre-processed by the runtime's own
:func:`edgepose.preprocess.fit_to_input`, so the report checks exactly what ``edgepose run``
gives; keypoints are then scaled to model-input pixels (source pixels x input size / image size).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepose.progress import bar as progress_bar
from edgepose.types import Pose

CONFIDENT = 0.5


# --------------------------------------------------------------------------- pure metrics


def keypoint_errors(ref: Sequence[Pose], test: Sequence[Pose], min_score: float = CONFIDENT) -> np.ndarray:
    """Pixel error of every confident keypoint of ``ref`` poses against the matching ``test`` pose.

    Poses are matched greedily, best reference pose first, to the unmatched test pose with the
    smallest median distance over the reference pose's confident keypoints; a reference pose
    with no test pose left gives ``inf`` errors.
    """
    errs: list[np.ndarray] = []
    free = list(range(len(test)))
    for p in sorted(ref, key=lambda q: -q.score):
        mask = p.scores > min_score
        if not mask.any():
            continue
        best, best_d = None, np.inf
        for j in free:
            d = np.linalg.norm(test[j].keypoints[mask] - p.keypoints[mask], axis=1)
            med = float(np.median(d))
            if med < best_d:
                best, best_d = j, med
        if best is None:
            errs.append(np.full(int(mask.sum()), np.inf, np.float32))
            continue
        free.remove(best)
        errs.append(np.linalg.norm(test[best].keypoints[mask] - p.keypoints[mask], axis=1).astype(np.float32))
    return np.concatenate(errs) if errs else np.zeros(0, np.float32)


def summarize_errors(errs: np.ndarray) -> dict[str, float | int | None]:
    n = int(errs.size)
    if n == 0:
        return {"confident": 0, "within_2px": None, "within_5px": None, "mean_px": None, "p95_px": None, "unmatched": 0}
    finite = errs[np.isfinite(errs)]
    # "higher" picks an actual error (no interpolation with inf for unmatched poses).
    p95 = float(np.percentile(errs, 95, method="higher"))
    return {
        "confident": n,
        "within_2px": float(np.mean(errs <= 2.0)),
        "within_5px": float(np.mean(errs <= 5.0)),
        "mean_px": float(finite.mean()) if finite.size else None,
        "p95_px": p95 if np.isfinite(p95) else None,
        "unmatched": int(n - finite.size),
    }


def cpu_description() -> dict[str, Any]:
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return {"cpu": model, "machine": platform.machine(), "int8_dot_product_instructions": vnni, "avx2": "avx2" in flags}


# --------------------------------------------------------------------------- measuring models


@dataclass
class ModelRun:
    label: str
    path: Path
    precision: str
    poses: list[list[Pose]]
    latency_ms: float
    size_bytes: int


def run_models(
    models: dict[str, Path],
    images: Sequence[np.ndarray],
    threads: int = 2,
    rounds: int = 30,
    progress: bool | None = None,
) -> dict[str, ModelRun]:
    """Poses of every image with every model, and each model's median invoke time.

    Latency is measured round-robin (one invoke of each model per round, after a
    warm-up), so clock and cache effects hit every model alike.
    """
    from edgepose.model.posenet import load_posenet

    loaded = {label: load_posenet(path, threads=threads) for label, path in models.items()}
    poses = {
        label: [to_input_pixels(m.estimate(img), img.shape, (m.input_height, m.input_width)) for img in images]
        for label, m in progress_bar(desc="evaluating", unit="model", progress=progress, items=loaded.items())
    }
    tensors = {label: m.preprocess(images[0])[0] for label, m in loaded.items()}
    times: dict[str, list[float]] = {label: [] for label in loaded}
    for r in range(rounds + 3):
        for label, m in loaded.items():
            t = time.perf_counter()
            m.invoke(tensors[label])
            if r >= 3:
                times[label].append(time.perf_counter() - t)
    return {
        label: ModelRun(
            label,
            Path(models[label]),
            (m.metadata or {}).get("precision", "?"),
            poses[label],
            1e3 * statistics.median(times[label]),
            Path(models[label]).stat().st_size,
        )
        for label, m in loaded.items()
    }


def to_input_pixels(poses: Sequence[Pose], image_shape: tuple[int, ...], input_size: tuple[int, int]) -> list[Pose]:
    """Poses in source-image pixels (what ``edgepose run`` writes) rescaled to model-input pixels."""
    h, w = image_shape[:2]
    ih, iw = input_size
    return [p.scaled(iw / w, ih / h) for p in poses]


def source_fidelity(src, float_model: Path, images: Sequence[np.ndarray], size: tuple[int, int]) -> dict[str, float]:
    """max |float32 tflite - source| per output role over the images."""
    from edgepose.model.flatbuf import read_metadata

    from .calibration import preprocess
    from .tflite import TFLiteRunner

    buf = Path(float_model).read_bytes()
    names = (read_metadata(buf) or {})["outputs"]
    runner = TFLiteRunner(buf)
    worst: dict[str, float] = {r: 0.0 for r in names}
    for img in images:
        x = preprocess(img, size)
        ref = src.run(x)
        out = runner(x)
        for r, n in names.items():
            worst[r] = max(worst[r], float(np.max(np.abs(out[n] - ref[r]))))
    return worst


def fidelity_report(
    models: dict[str, Path],
    eval_paths: Sequence[Path],
    *,
    src=None,
    baseline: str = "float32",
    threads: int = 2,
    extra: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Compare every model with ``models[baseline]`` on the held-out images ``eval_paths``."""
    from edgepose.model.flatbuf import read_metadata

    from .calibration import read_image

    base_meta = read_metadata(Path(models[baseline]).read_bytes()) or {}
    h, w = base_meta["input"]["height"], base_meta["input"]["width"]
    # Full-size images through the runtime's own pre-processing, as `edgepose run` sees them.
    images = [read_image(p) for p in eval_paths]
    runs = run_models({k: Path(v) for k, v in models.items()}, images, threads, progress=progress)
    base = runs[baseline]
    rows = []
    for label, run in runs.items():
        errs = (
            np.concatenate([keypoint_errors(b, t) for b, t in zip(base.poses, run.poses)])
            if label != baseline
            else np.zeros(0)
        )
        rows.append(
            {
                "label": label,
                "precision": run.precision,
                "file": run.path.name,
                "size_bytes": run.size_bytes,
                "size_vs_float32": run.size_bytes / base.size_bytes,
                "latency_ms": run.latency_ms,
                "latency_vs_float32": run.latency_ms / base.latency_ms,
                "poses_per_image": float(np.mean([len(p) for p in run.poses])),
                "keypoints_vs_float32": summarize_errors(errs) if label != baseline else None,
            }
        )
    report: dict[str, Any] = {
        "input_size": [h, w],
        "eval_images": [Path(p).name for p in eval_paths],
        "baseline": baseline,
        "confident_score": CONFIDENT,
        # What `edgepose run` does by default, so the figures are the CLI's.
        "pre_processing": "full-size images through edgepose.preprocess.fit_to_input (stretch, antialias)",
        "threads": threads,
        "machine": cpu_description(),
        "models": rows,
    }
    if src is not None:
        report["source_fidelity"] = {
            "source": src.source_label,
            "max_abs_diff": source_fidelity(src, Path(models[baseline]), [read_image(p) for p in eval_paths], (h, w)),
        }
    report["notes"] = _notes(report)
    if extra:
        report.update(extra)
    return report


def _notes(report: dict[str, Any]) -> list[str]:
    notes = []
    m = report["machine"]
    int8 = [r for r in report["models"] if r["precision"] in ("int8", "edgetpu")]
    if int8 and not m["int8_dot_product_instructions"]:
        ratios = [r["latency_vs_float32"] for r in int8]
        notes.append(
            f"this CPU ({m['cpu']}) has no int8 dot-product instructions (VNNI): int8 is not faster than float32 here "
            f"({_span(ratios)}x float32 latency); on ARM (Raspberry Pi) and the Edge TPU int8 is the fast path."
        )
    dyn = [r for r in report["models"] if r["precision"] == "dynamic"]
    if dyn and dyn[0]["latency_vs_float32"] > 1.2:
        notes.append(
            "dynamic-range models dequantize weights while running (hybrid kernels): smallest file, but slower than float32 on this CPU."
        )
    return notes


def _span(vals: list[float]) -> str:
    lo, hi = min(vals), max(vals)
    return f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}-{hi:.2f}"


def format_table(report: dict[str, Any]) -> str:
    lines = []
    sf = report.get("source_fidelity")
    if sf:
        diffs = ", ".join(f"{r} {v:.2e}" for r, v in sf["max_abs_diff"].items())
        lines.append(f"float32 TFLite vs source ({sf['source']}), max |diff|: {diffs}")
    h, w = report["input_size"]
    lines.append(
        f"{len(report['eval_images'])} held-out images at {h}x{w}; keypoints with float32 score > {report['confident_score']}; {report['threads']} threads"
    )
    hdr = f"{'model':<22} {'size MB':>7} {'xf32':>5} {'ms':>7} {'xf32':>5} {'≤2px':>6} {'≤5px':>6} {'mean px':>7} {'p95 px':>7} {'poses/img':>9}"
    lines += [hdr, "-" * len(hdr)]
    for r in report["models"]:
        k = r["keypoints_vs_float32"] or {}

        def pct(v):
            return "   -  " if v is None else f"{100 * v:5.1f}%"

        def px(v):
            return "    -  " if v is None else f"{v:7.2f}"

        lines.append(
            f"{r['label']:<22} {r['size_bytes'] / 1e6:7.2f} {r['size_vs_float32']:5.2f} {r['latency_ms']:7.1f} {r['latency_vs_float32']:5.2f} "
            f"{pct(k.get('within_2px'))} {pct(k.get('within_5px'))} {px(k.get('mean_px'))} {px(k.get('p95_px'))} {r['poses_per_image']:9.2f}"
        )
    for n in report.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
