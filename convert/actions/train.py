"""Training, video-grouped evaluation and int8 export of the action classifier (workstation side).

TensorFlow is imported inside the functions that need it, so importing this
module (e.g. for :func:`augment` or the fold splitter) stays cheap. The export is the
converter's own :func:`edgepose_convert.tflite.convert_function`, as for PoseNet and
relocalization. The device never imports this module: it runs the exported ``.tflite``
with :class:`edgepose.actions.classifier.ActionClassifier`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgepose import geometry as g
from edgepose.actions.features import FEATURE_VERSION, FEATURES_PER_FRAME, batch_features

log = logging.getLogger(__name__)

MODEL_KINDS = ("conv", "mlp")


@dataclass
class TrainSettings:
    kind: str = "conv"
    window: int = 15
    fps: float = 10.0
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 2e-3
    width: int = 64
    dropout: float = 0.3
    label_smoothing: float = 0.1
    augment: bool = True
    seed: int = 0


@dataclass
class FoldResult:
    fold: int
    test_groups: list[str]
    accuracy: float
    n_windows: int
    y_true: np.ndarray
    y_pred: np.ndarray


@dataclass
class EvalReport:
    classes: list[str]
    folds: list[FoldResult] = field(default_factory=list)

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([f.accuracy for f in self.folds])

    def confusion(self) -> np.ndarray:
        k = len(self.classes)
        cm = np.zeros((k, k), np.int64)
        for f in self.folds:
            np.add.at(cm, (f.y_true, f.y_pred), 1)
        return cm

    def recalls(self) -> np.ndarray:
        cm = self.confusion()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(cm) / cm.sum(axis=1)


# --------------------------------------------------------------------------- augmentation


def augment(kp: np.ndarray, vis: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Randomly perturbed copies of ``(N, T, 17, 2)`` windows: the variations a camera adds, not the action.

    Mirror left/right (half the windows), rotate by up to 10 degrees, stretch
    each axis by up to 15 %, jitter each joint by ~3 % of the torso size and
    drop ~5 % of the joint observations, as PoseNet does on hard frames.
    """
    n, t = kp.shape[:2]
    kp = kp.astype(np.float32).copy()
    vis = vis.copy()
    flip = rng.random(int(n)) < 0.5
    if flip.any():
        kp[flip] = kp[flip][:, :, g.MIRROR_PERM]
        vis[flip] = vis[flip][:, :, g.MIRROR_PERM]
        kp[flip, :, :, 0] *= -1.0
    centre = np.nanmean(np.where(vis[..., None], kp, np.nan), axis=(1, 2), keepdims=True)
    centre = np.nan_to_num(centre)
    kp -= centre
    ang = np.deg2rad(rng.uniform(-10, 10, n)).astype(np.float32)
    c, s = np.cos(ang), np.sin(ang)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (N, 2, 2)
    kp = np.einsum("ntjd,ned->ntje", kp, rot)
    kp *= rng.uniform(0.85, 1.15, (n, 1, 1, 2)).astype(np.float32)
    with np.errstate(all="ignore"):
        size = np.nan_to_num(np.nanmedian(g.torso_size(kp, vis), axis=1), nan=1.0)
    kp += rng.normal(0, 0.03, kp.shape).astype(np.float32) * size[:, None, None, None]
    vis &= rng.random(vis.shape) >= 0.05
    kp += centre
    return kp, vis


# --------------------------------------------------------------------------- splits


def grouped_folds(
    labels: list[str], groups: list[str], n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test window indices with every source video on one side only.

    StratifiedGroupKFold keeps the classes spread over the folds as far as
    whole videos allow (plain GroupKFold can put both videos of a class in
    one test fold, leaving the model nothing to learn it from).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels)
    gr = np.asarray(groups)
    n_groups = len(set(groups))
    if n_groups < n_splits:
        from ..errors import EdgeposeError

        raise EdgeposeError(
            f"only {n_groups} source videos for {n_splits} folds.",
            "add recordings or pass --folds with a smaller number.",
        )
    skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in skf.split(np.zeros(len(y)), y, gr)]


# --------------------------------------------------------------------------- model


def build_model(kind: str, window: int, n_classes: int, width: int = 64, dropout: float = 0.3):
    """A small Keras model over ``(window, FEATURES_PER_FRAME)`` standardised features, logits out."""
    import tensorflow as tf

    keras = tf.keras
    inp = keras.Input((window, FEATURES_PER_FRAME), name="features")
    if kind == "mlp":
        x = keras.layers.Flatten()(inp)
        x = keras.layers.Dense(2 * width, activation="relu")(x)
        x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Dense(width, activation="relu")(x)
    elif kind == "conv":
        # Temporal convolutions see short motion patterns (a step, a wave cycle) anywhere in the window.
        x = keras.layers.Conv1D(width, 3, padding="same", activation="relu")(inp)
        x = keras.layers.Dropout(dropout / 2)(x)
        x = keras.layers.Conv1D(width, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv1D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.GlobalAveragePooling1D()(x)
    else:
        raise ValueError(f"unknown model kind {kind!r}; one of {MODEL_KINDS}")
    x = keras.layers.Dropout(dropout)(x)
    out = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out)


def standardiser(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over windows and frames (std floored so constant features stay 0)."""
    flat = feats.reshape(-1, feats.shape[-1])
    return flat.mean(axis=0).astype(np.float32), np.maximum(flat.std(axis=0), 1e-3).astype(np.float32)


@dataclass
class TrainedModel:
    keras_model: Any
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    settings: TrainSettings

    def standardise(self, feats: np.ndarray) -> np.ndarray:
        return np.clip((feats - self.mean) / self.std, -8.0, 8.0).astype(np.float32)

    def predict(self, kp: np.ndarray, vis: np.ndarray) -> np.ndarray:
        x = self.standardise(batch_features(kp, vis))
        return np.asarray(self.keras_model.predict(x, batch_size=1024, verbose=0)).argmax(axis=1)


def train(
    kp: np.ndarray,
    vis: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    settings: TrainSettings,
    progress: Callable[[int, dict], None] | None = None,
) -> TrainedModel:
    """Train one model on windows ``kp (N,T,17,2)``, ``vis``, integer labels ``y``."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    base = batch_features(kp, vis)
    mean, std = standardiser(base)
    model = build_model(settings.kind, settings.window, len(classes), settings.width, settings.dropout)
    steps = max(1, int(np.ceil(len(y) / settings.batch_size))) * settings.epochs
    lr = tf.keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(lr),
        loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=settings.label_smoothing),
        metrics=["accuracy"],
    )
    # Balance classes: the smallest class has half the windows of the largest.
    counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
    cw = {i: float(len(y) / (len(classes) * c)) if c else 0.0 for i, c in enumerate(counts)}
    onehot = np.eye(len(classes), dtype=np.float32)[y]
    for epoch in range(settings.epochs):
        if settings.augment:
            ak, av = augment(kp, vis, rng)
            x = batch_features(ak, av)
        else:
            x = base
        x = np.clip((x - mean) / std, -8.0, 8.0)
        hist = model.fit(x, onehot, batch_size=settings.batch_size, epochs=1, verbose=0, class_weight=cw, shuffle=True)
        if progress:
            progress(epoch, {k: float(v[-1]) for k, v in hist.history.items()})
    return TrainedModel(model, list(classes), mean, std, settings)


def cross_validate(
    kp: np.ndarray,
    vis: np.ndarray,
    labels: list[str],
    groups: list[str],
    settings: TrainSettings,
    n_splits: int = 5,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Per-window accuracy on folds grouped by source video."""
    classes = sorted(set(labels))
    y = np.array([classes.index(lb) for lb in labels])
    report = EvalReport(classes)
    for i, (tr, te) in enumerate(grouped_folds(labels, groups, n_splits, settings.seed)):
        t0 = time.perf_counter()
        m = train(kp[tr], vis[tr], y[tr], classes, settings)
        pred = m.predict(kp[te], vis[te])
        acc = float((pred == y[te]).mean())
        report.folds.append(FoldResult(i, sorted({groups[j] for j in te}), acc, len(te), y[te], pred))
        if progress:
            progress(f"fold {i + 1}/{n_splits}: {acc:.1%} on {len(te)} windows ({time.perf_counter() - t0:.0f} s)")
    return report


# --------------------------------------------------------------------------- export


def export_tflite(trained: TrainedModel, calibration: np.ndarray, extra_meta: dict | None = None) -> bytes:
    """Full-integer (int8 in, int8 out) TFLite flatbuffer with edgepose metadata.

    ``calibration`` are standardised feature windows ``(N, T, F)`` used to
    pick the int8 ranges. The metadata carries everything the device needs
    to build the same input: classes, window length, frame rate, feature
    version and the standardisation constants.
    """
    from edgepose.actions.classifier import MODEL_TYPE as ACTION_MODEL_TYPE
    from edgepose.model.base import MODEL_TYPE_KEY
    from edgepose.model.flatbuf import write_metadata

    from ..errors import import_tensorflow
    from ..tflite import QuantOptions, convert_function

    tf = import_tensorflow()
    s = trained.settings
    fn = tf.function(trained.keras_model).get_concrete_function(
        tf.TensorSpec([1, s.window, FEATURES_PER_FRAME], tf.float32)
    )
    cal = calibration[np.random.default_rng(0).permutation(len(calibration))[:500]]

    def rep():
        for w in cal:
            yield [w[None].astype(np.float32)]

    buf = convert_function(fn, "int8", rep, QuantOptions(io_type="int8", mirror=False))
    meta = {
        MODEL_TYPE_KEY: ACTION_MODEL_TYPE,
        "classes": trained.classes,
        "window": s.window,
        "fps": s.fps,
        "feature_version": FEATURE_VERSION,
        "mean": [round(float(v), 6) for v in trained.mean],
        "std": [round(float(v), 6) for v in trained.std],
        "kind": s.kind,
    }
    meta.update(extra_meta or {})
    return write_metadata(buf, meta)
