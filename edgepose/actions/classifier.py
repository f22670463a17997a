"""Device-side action classifier: runs the int8 ``.tflite`` from ``edgepose actions train`` (no TensorFlow).

The model file carries edgepose metadata (classes, window length, frame
rate, feature version, standardisation constants), so the device builds
exactly the input the model was trained on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..model.flatbuf import read_metadata
from ..model.runtime import make_interpreter
from .features import FEATURE_VERSION, FEATURES_PER_FRAME, batch_features


class ActionClassifier:
    """``predict(keypoints (T,17,2), visible (T,17)) -> probabilities (C,)`` for one window."""

    def __init__(self, model: bytes | str | Path, threads: int = 1, name: str | None = None):
        if isinstance(model, (str, Path)):
            p = Path(model)
            name = name or str(p)
            try:
                model = p.read_bytes()
            except FileNotFoundError:
                raise ModelError(f"action model {p} does not exist.", "train one with `edgepose actions train` or fix actions.model_path.") from None
        name = name or "action model"
        meta = read_metadata(model)
        if not meta or meta.get("type") != "action_classifier":
            raise ModelError(f"{name} is not an edgepose action classifier (no action metadata).", "export it with `edgepose actions train`.")
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"{name} was trained on feature version {meta.get('feature_version')}, this edgepose computes version {FEATURE_VERSION}.",
                "retrain it with this edgepose version.",
            )
        self.classes: list[str] = list(meta["classes"])
        self.window: int = int(meta["window"])
        self.fps: float = float(meta["fps"])
        self.mean = np.asarray(meta["mean"], np.float32)
        self.std = np.asarray(meta["std"], np.float32)
        self.meta = meta
        self.interpreter = make_interpreter(model, num_threads=threads, name=name)
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        if tuple(inp["shape"]) != (1, self.window, FEATURES_PER_FRAME):
            raise ModelError(f"{name} takes input {tuple(inp['shape'].tolist())}, expected (1, {self.window}, {FEATURES_PER_FRAME}).", "re-export it.")
        self._in, self._out = inp, out
        self._in_q = inp["quantization"]
        self._out_q = out["quantization"]

    def _run(self, x: np.ndarray) -> np.ndarray:
        inp, out = self._in, self._out
        if inp["dtype"] != np.float32:
            scale, zp = self._in_q
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zp), info.min, info.max).astype(inp["dtype"])
        self.interpreter.set_tensor(inp["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zp = self._out_q
            y = (y.astype(np.float32) - zp) * scale
        return y.astype(np.float32)

    def standardise(self, feats: np.ndarray) -> np.ndarray:
        return np.clip((feats - self.mean) / self.std, -8.0, 8.0).astype(np.float32)

    def predict(self, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Class probabilities for one window of ``self.window`` frames at ``self.fps``."""
        x = self.standardise(batch_features(np.asarray(keypoints)[None], np.asarray(visible)[None]))
        logits = self._run(x)
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def predict_batch(self, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """``(N, C)`` probabilities (one interpreter call per window: the model has batch 1)."""
        x = self.standardise(batch_features(keypoints, visible))
        logits = np.stack([self._run(w[None]) for w in x]) if len(x) else np.zeros((0, len(self.classes)), np.float32)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
