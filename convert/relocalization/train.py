"""Train, evaluate and export the relocalization PoseNet (workstation side).

The whole path a user runs with ``edgepose reloc train``:

1. read ``dataset_train.txt`` / ``dataset_test.txt`` (:mod:`.dataset`), crop the
   images to the model input exactly as the device will (``crop_to_input``);
2. normalise positions (training mean, one RMS scale for all axes so the
   Euclidean loss keeps its geometry), set ``beta`` (given, or balanced so the
   mean-pose baseline's two loss terms are equal);
3. train with Kendall's loss (:mod:`.model`);
4. evaluate on the held-out split: median position / orientation error against
   the mean-pose baseline (the training set's mean position and mean rotation);
5. export ``.tflite`` in each precision through the converter's machinery
   (:func:`edgepose_convert.tflite.convert_function`, int8 calibrated on training images),
   write edgepose metadata, and evaluate each file with the *device* runtime
   (:class:`edgepose.relocalization.CameraPoseEstimator`) on the full-size test
   images, with its latency.

TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from edgepose.progress import bar as progress_bar
from edgepose.relocalization.estimator import MODEL_TYPE, RESIZE_MODE, CameraPoseEstimator
from edgepose.relocalization.geometry import (
    mean_quaternion,
    normalize_quaternion,
    orientation_errors_deg,
    position_errors,
)

from .dataset import PoseDataset, load_images, read_bgr, read_dataset, split_file

log = logging.getLogger(__name__)

METADATA_FORMAT = "edgepose"
METADATA_VERSION = 1
INPUT_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class TrainSettings:
    input_size: int = 128
    arch: str = "small"
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    #: Kendall's beta; ``None`` balances the mean-pose baseline's two loss terms (in normalised units)
    beta: float | None = None
    dropout: float = 0.2
    #: photometric jitter (brightness, contrast) of training images
    augment: bool = True
    seed: int = 0


@dataclass(frozen=True)
class PositionNorm:
    """``position = network output * scale + mean`` (recorded in the model's metadata)."""

    mean: tuple[float, float, float]
    scale: float

    @classmethod
    def fit(cls, positions: np.ndarray) -> PositionNorm:
        p = np.asarray(positions, np.float64)
        mean = p.mean(axis=0)
        rms = float(np.sqrt(np.mean(np.sum((p - mean) ** 2, axis=1))))
        return cls(tuple(float(v) for v in mean), rms if rms > 1e-9 else 1.0)  # type: ignore[arg-type]

    def forward(self, positions: np.ndarray) -> np.ndarray:
        return (np.asarray(positions, np.float64) - np.asarray(self.mean)) / self.scale

    def inverse(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs, np.float64) * self.scale + np.asarray(self.mean)

    def to_metadata(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "scale": [self.scale] * 3}


# --------------------------------------------------------------------------- baseline and metrics


@dataclass(frozen=True)
class MeanPose:
    """The trivial relocaliser: always answer the training set's mean position and mean rotation."""

    position: np.ndarray
    orientation: np.ndarray

    @classmethod
    def fit(cls, positions: np.ndarray, orientations: np.ndarray) -> MeanPose:
        return cls(np.asarray(positions, np.float64).mean(axis=0), mean_quaternion(orientations))

    def predict(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.tile(self.position, (n, 1)), np.tile(self.orientation, (n, 1))


def pose_errors(pred_pos: np.ndarray, pred_q: np.ndarray, true_pos: np.ndarray, true_q: np.ndarray) -> dict[str, float]:
    """Median (Kendall's figure), mean and 90th percentile of position and orientation errors."""
    dp = position_errors(pred_pos, true_pos)
    dq = orientation_errors_deg(pred_q, true_q)
    return {
        "median_position": float(np.median(dp)),
        "median_orientation_deg": float(np.median(dq)),
        "mean_position": float(np.mean(dp)),
        "mean_orientation_deg": float(np.mean(dq)),
        "p90_position": float(np.percentile(dp, 90)),
        "p90_orientation_deg": float(np.percentile(dq, 90)),
        "n": int(len(dp)),
    }


def auto_beta(positions_normalised: np.ndarray, orientations: np.ndarray) -> float:
    """Kendall balances beta so position and orientation errors weigh alike; this takes the
    ratio of the mean-pose baseline's median position and quaternion-distance terms."""
    p = np.asarray(positions_normalised)
    q = normalize_quaternion(orientations)
    dp = np.median(np.linalg.norm(p - p.mean(axis=0), axis=1))
    dq = np.median(np.linalg.norm(q - mean_quaternion(q), axis=1))
    return float(dp / max(dq, 1e-3))


# --------------------------------------------------------------------------- training


@dataclass
class Trained:
    keras_model: Any
    norm: PositionNorm
    beta: float
    settings: TrainSettings
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.settings.input_size, self.settings.input_size)

    def predict(self, images_rgb: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Keras (TensorFlow) predictions for cropped RGB uint8 images: (positions, unit quaternions)."""
        out = self.keras_model.predict(to_model_input(images_rgb), batch_size=batch_size, verbose=0)
        return self.norm.inverse(out["position"]), normalize_quaternion(out["orientation"])


def to_model_input(images_rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> float32 in ``INPUT_RANGE`` (the same affine map the device applies)."""
    lo, hi = INPUT_RANGE
    return np.asarray(images_rgb, np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)


def compile_model(model: Any, beta: float, learning_rate: Any = 1e-3) -> Any:
    """Compile with Kendall's loss: the heads' losses summed with weights 1 (position) and ``beta`` (orientation)."""
    from edgepose_convert.errors import import_tensorflow

    from .model import orientation_loss, position_loss

    tf = import_tensorflow()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss={"position": position_loss, "orientation": orientation_loss},
        loss_weights={"position": 1.0, "orientation": float(beta)},
    )
    return model


def train(
    images_rgb: np.ndarray,
    positions: np.ndarray,
    orientations: np.ndarray,
    settings: TrainSettings = TrainSettings(),
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: bool | None = None,
) -> Trained:
    """Train on cropped RGB uint8 images ``(N, s, s, 3)`` with their poses (Kendall's loss)."""
    from edgepose_convert.errors import import_tensorflow

    from .model import build_model

    tf = import_tensorflow()
    if len(images_rgb) < 2:
        from .dataset import DatasetError

        raise DatasetError(
            f"training needs at least 2 images, got {len(images_rgb)}.", "add images to dataset_train.txt."
        )
    tf.keras.utils.set_random_seed(settings.seed)
    norm = PositionNorm.fit(positions)
    y_pos = norm.forward(positions).astype(np.float32)
    y_ori = normalize_quaternion(orientations).astype(np.float32)
    beta = float(settings.beta) if settings.beta is not None else auto_beta(y_pos, y_ori)
    model = build_model((settings.input_size, settings.input_size), settings.arch, settings.dropout)
    n = len(images_rgb)
    steps = max(1, int(np.ceil(n / settings.batch_size))) * settings.epochs
    compile_model(model, beta, tf.keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps, alpha=0.05))
    augment = settings.augment

    def prep(img, pos, ori):
        x = tf.cast(img, tf.float32) / 255.0
        if augment:
            x = tf.image.random_brightness(x, 0.12)
            x = tf.image.random_contrast(x, 0.8, 1.2)
            x = tf.clip_by_value(x, 0.0, 1.0)
        lo, hi = INPUT_RANGE
        return x * (hi - lo) + lo, {"position": pos, "orientation": ori}

    ds = (
        tf.data.Dataset.from_tensor_slices((images_rgb, y_pos, y_ori))
        .shuffle(n, seed=settings.seed, reshuffle_each_iteration=True)
        .map(prep, num_parallel_calls=2)
        .batch(settings.batch_size)
        .prefetch(2)
    )
    val = None
    if validation is not None:
        vi, vp, vq = validation
        val = (
            to_model_input(vi),
            {
                "position": norm.forward(vp).astype(np.float32),
                "orientation": normalize_quaternion(vq).astype(np.float32),
            },
        )
    t0 = time.perf_counter()
    # Our own bar, one step per epoch: Keras' bar writes ANSI codes to stdout even into a file.
    bar = progress_bar(settings.epochs, "training", "epoch", progress)

    def epoch_done(epoch: int, logs: dict[str, float] | None) -> None:
        logs = logs or {}
        bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("loss", "val_loss") if k in logs})
        bar.update(1)

    cb = tf.keras.callbacks.LambdaCallback(on_epoch_end=epoch_done)
    hist = model.fit(
        ds, epochs=settings.epochs, validation_data=val, verbose=0, shuffle=False, callbacks=[cb]
    )  # ds shuffles itself
    bar.close()
    return Trained(
        model,
        norm,
        beta,
        settings,
        {k: [float(v) for v in vs] for k, vs in hist.history.items()},
        time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- export


def relocalization_metadata(
    *,
    name: str,
    arch: str,
    input_size: tuple[int, int],
    outputs: dict[str, str],
    norm: PositionNorm,
    scene: str,
    units: str,
    precision: str,
    beta: float,
    source: str = "edgepose reloc train",
) -> dict[str, Any]:
    """The metadata :class:`CameraPoseEstimator` reads (contract: edgepose/relocalization/README.md)."""
    return {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "model_type": MODEL_TYPE,
        "name": name,
        "architecture": arch,
        "input": {
            "height": int(input_size[0]),
            "width": int(input_size[1]),
            "color": "RGB",
            "range": list(INPUT_RANGE),
            "resize": RESIZE_MODE,
        },
        "outputs": {"position": outputs["position"], "orientation": outputs["orientation"]},
        "position_normalization": norm.to_metadata(),
        "position": "camera centre in world coordinates",
        "orientation": "quaternion w x y z, world-to-camera rotation; normalised at run time",
        "scene": scene,
        "units": units,
        "beta": float(beta),
        "precision": precision,
        "source": source,
    }


@dataclass
class ExportResult:
    path: Path
    precision: str
    size_bytes: int
    metadata: dict[str, Any]
    #: max |tflite - keras| per output on a probe image (normalised position units, raw quaternion)
    max_abs_diff: dict[str, float]
    notes: list[str] = field(default_factory=list)


def export_tflite(
    trained: Trained,
    precision: str,
    out: str | Path,
    *,
    calibration_rgb: np.ndarray | None = None,
    name: str = "reloc",
    scene: str = "scene",
    units: str = "m",
    progress: bool | None = None,
) -> ExportResult:
    """Write ``out`` (``.tflite`` in ``precision``: float32, float16, dynamic or int8) with edgepose metadata."""
    from edgepose.model.flatbuf import write_metadata
    from edgepose_convert import edgetpu as etpu
    from edgepose_convert.errors import ConvertError, import_tensorflow
    from edgepose_convert.model_types import PRECISIONS
    from edgepose_convert.tflite import (
        QuantOptions,
        TFLiteRunner,
        convert_function,
        map_output_roles,
        representative_dataset,
    )

    tf = import_tensorflow()
    if precision not in PRECISIONS:
        raise ConvertError(f"unknown precision {precision!r}.", f"use one of {', '.join(PRECISIONS)}.")
    h, w = trained.input_size
    km = trained.keras_model

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")], autograph=False)
    def serve(x):
        out = km(x, training=False)
        return {"position": out["position"], "orientation": out["orientation"]}

    fn = serve.get_concrete_function()
    rep = None
    if precision == "int8":
        if calibration_rgb is None or len(calibration_rgb) == 0:
            raise ConvertError("int8 needs calibration images.", "pass training images (they set the int8 ranges).")
        # The converter's calibration reads BGR and resizes to the input: hand it the device's crops in BGR.
        bgr = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR) for im in calibration_rgb]
        rep = representative_dataset(bgr, (h, w), mirror=False, progress=progress, desc="calibrating int8")
    buf = convert_function(fn, precision, rep, QuantOptions(io_type="uint8", mirror=False))
    # Which output is which: run TFLite and Keras on the same image and pair them numerically.
    probe = (
        to_model_input(calibration_rgb[:1])
        if calibration_rgb is not None and len(calibration_rgb)
        else np.zeros((1, h, w, 3), np.float32)
    )
    ref = {k: np.asarray(v) for k, v in serve(tf.constant(probe)).items()}
    outs = TFLiteRunner(buf)(probe)
    roles = map_output_roles(outs, ref)
    diffs = {r: float(np.max(np.abs(outs[n] - ref[r]))) for r, n in roles.items()}
    meta = relocalization_metadata(
        name=name,
        arch=trained.settings.arch,
        input_size=(h, w),
        outputs=roles,
        norm=trained.norm,
        scene=scene,
        units=units,
        precision=precision,
        beta=trained.beta,
    )
    buf = write_metadata(buf, meta)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf)
    res = ExportResult(out, precision, len(buf), meta, diffs)
    if precision == "int8":
        compat = etpu.compatibility_report(buf)
        if compat.cpu_ops:
            res.notes.append(
                f"Edge TPU: {len(compat.cpu_ops)} op(s) would stay on the CPU: "
                + ", ".join(sorted({o.op for o in compat.cpu_ops}))
            )
        else:
            res.notes.append(
                f"Edge TPU: all {compat.tpu_ops} ops are Edge TPU-compatible (compile with edgetpu_compiler)."
            )
    return res


# --------------------------------------------------------------------------- device-side evaluation


def evaluate_tflite(
    path: str | Path,
    images_bgr: Sequence[np.ndarray],
    positions: np.ndarray,
    orientations: np.ndarray,
    threads: int = 2,
    progress: bool | None = False,
    latency_runs: int = 50,
) -> dict[str, Any]:
    """Run a ``.tflite`` with the device runtime on full-size BGR images: errors and latency."""
    est = CameraPoseEstimator(path, threads=threads)
    pp, qq = [], []
    for img in progress_bar(
        desc=f"evaluating {Path(path).name}", unit="img", progress=progress, items=images_bgr, leave=False
    ):
        cp = est.estimate(img)
        pp.append(cp.position)
        qq.append(cp.orientation)
    res: dict[str, Any] = pose_errors(np.array(pp), np.array(qq), positions, orientations)
    # Latency: pre-processing + invoke (estimate) and invoke alone, medians over repeated runs.
    x = est.preprocess(images_bgr[0])
    est.raw(x)  # warm-up
    t_inv, t_all = [], []
    for i in range(latency_runs):
        img = images_bgr[i % len(images_bgr)]
        t0 = time.perf_counter()
        x = est.preprocess(img)
        t1 = time.perf_counter()
        est.raw(x)
        t2 = time.perf_counter()
        t_inv.append(t2 - t1)
        t_all.append(t2 - t0)
    res["invoke_ms"] = 1000 * float(np.median(t_inv))
    res["estimate_ms"] = 1000 * float(np.median(t_all))
    res["size_kb"] = Path(path).stat().st_size / 1024
    return res


def interleaved_latency(
    paths: dict[str, str | Path], image_bgr: np.ndarray, threads: int = 2, rounds: int = 5, runs: int = 20
) -> dict[str, float]:
    """Median invoke time (ms) per model, measured round-robin so that load from other processes hits all alike."""
    ests = {k: CameraPoseEstimator(p, threads=threads) for k, p in paths.items()}
    xs = {k: e.preprocess(image_bgr) for k, e in ests.items()}
    times: dict[str, list[float]] = {k: [] for k in ests}
    for k, e in ests.items():
        e.raw(xs[k])  # warm-up
    for _ in range(rounds):
        for k, e in ests.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                e.raw(xs[k])
                times[k].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


# --------------------------------------------------------------------------- the whole run


def train_and_export(
    data: str | Path,
    out_dir: str | Path,
    settings: TrainSettings = TrainSettings(),
    precisions: Sequence[str] = ("float32", "int8"),
    name: str | None = None,
    threads: int = 2,
    max_calibration: int = 200,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train on ``data``'s train split, export each precision to ``out_dir``, evaluate all on the test split."""
    train_ds = read_dataset(split_file(data, "train"))
    test_ds = read_dataset(split_file(data, "test"))
    size = (settings.input_size, settings.input_size)
    xtr = load_images(train_ds, size, progress, "loading train")
    xte = load_images(test_ds, size, progress, "loading test")
    trained = train(
        xtr,
        train_ds.positions,
        train_ds.orientations,
        settings,
        validation=(xte, test_ds.positions, test_ds.orientations),
        progress=progress,
    )
    return export_and_evaluate(
        trained, train_ds, test_ds, xtr, xte, out_dir, precisions, name, threads, max_calibration, progress
    )


def export_and_evaluate(
    trained: Trained,
    train_ds: PoseDataset,
    test_ds: PoseDataset,
    xtr: np.ndarray,
    xte: np.ndarray,
    out_dir: str | Path,
    precisions: Sequence[str] = ("float32", "int8"),
    name: str | None = None,
    threads: int = 2,
    max_calibration: int = 200,
    progress: bool | None = None,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    s = trained.settings
    name = name or f"reloc_{train_ds.scene}_{s.arch}_{s.input_size}"
    baseline = MeanPose.fit(train_ds.positions, train_ds.orientations)
    report: dict[str, Any] = {
        "scene": train_ds.scene,
        "units": train_ds.units,
        "n_train": len(train_ds),
        "n_test": len(test_ds),
        "settings": asdict(s),
        "beta": trained.beta,
        "train_seconds": trained.seconds,
        "position_normalization": trained.norm.to_metadata(),
        "results": {},
    }
    bp, bq = baseline.predict(len(test_ds))
    report["results"]["mean-pose baseline"] = pose_errors(bp, bq, test_ds.positions, test_ds.orientations)
    kp, kq = trained.predict(xte)
    report["results"]["keras (TF)"] = pose_errors(kp, kq, test_ds.positions, test_ds.orientations)
    tp, tq = trained.predict(xtr)
    report["train_fit"] = pose_errors(tp, tq, train_ds.positions, train_ds.orientations)
    rng = np.random.default_rng(s.seed)
    calib = xtr[rng.permutation(len(xtr))[:max_calibration]]
    test_bgr = read_bgr(test_ds)
    report["exports"] = {}
    for prec in precisions:
        path = out_dir / f"{name}_{prec}.tflite"
        ex = export_tflite(
            trained,
            prec,
            path,
            calibration_rgb=calib,
            name=name,
            scene=train_ds.scene,
            units=train_ds.units,
            progress=progress,
        )
        report["exports"][prec] = {
            "path": str(ex.path),
            "size_bytes": ex.size_bytes,
            "max_abs_diff_vs_keras": ex.max_abs_diff,
            "notes": ex.notes,
        }
        report["results"][f"tflite {prec}"] = evaluate_tflite(
            ex.path, test_bgr, test_ds.positions, test_ds.orientations, threads=threads, progress=progress
        )
    lat = interleaved_latency({p: e["path"] for p, e in report["exports"].items()}, test_bgr[0], threads)
    for prec, ms in lat.items():
        report["results"][f"tflite {prec}"]["invoke_ms"] = ms
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as a text table: errors per predictor, against the baseline, size and latency."""
    units = report.get("units", "m")
    res = report["results"]
    base = res.get("mean-pose baseline", {})
    f32 = res.get("tflite float32", {})
    head = f"{'predictor':<20} {'median pos (' + units + ')':>15} {'median ori (deg)':>17} {'pos/baseline':>13} {'ori/baseline':>13} {'size KB':>8} {'invoke ms':>10} {'vs float32':>11}"
    lines = [head, "-" * len(head)]
    for label, r in res.items():
        rp = r["median_position"] / base["median_position"] if base.get("median_position") else float("nan")
        ro = (
            r["median_orientation_deg"] / base["median_orientation_deg"]
            if base.get("median_orientation_deg")
            else float("nan")
        )
        size = f"{r['size_kb']:.0f}" if "size_kb" in r else "-"
        inv = f"{r['invoke_ms']:.2f}" if "invoke_ms" in r else "-"
        ratio = f"{r['invoke_ms'] / f32['invoke_ms']:.2f}x" if "invoke_ms" in r and f32.get("invoke_ms") else "-"
        lines.append(
            f"{label:<20} {r['median_position']:>15.3f} {r['median_orientation_deg']:>17.2f} {rp:>13.2f} {ro:>13.2f} {size:>8} {inv:>10} {ratio:>11}"
        )
    return "\n".join(lines)
