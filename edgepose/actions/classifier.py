"""Device-side action classifier: runs the int8 ``.tflite`` from ``edgepose actions train`` (no TensorFlow).

The model file carries edgepose metadata (classes, window length, frame
rate, feature version, standardisation constants), so the device builds
exactly the input the model was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..model.base import TFLiteModel, model_type
from .features import FEATURE_VERSION, FEATURES_PER_FRAME, batch_features

#: The ``model_type`` in the metadata ``edgepose actions train`` writes.
MODEL_TYPE = "action_classifier"


class ActionClassifier(TFLiteModel):
    """``predict(keypoints (T,17,2), visible (T,17)) -> probabilities (C,)`` for one window."""

    model_type = MODEL_TYPE
    what = "action model"
    missing_fix = "train one with `edgepose actions train` or fix actions.model_path."

    def __init__(
        self,
        model: bytes | str | Path,
        threads: int = 1,
        name: str | None = None,
        *,
        edgetpu: str = "auto",
        edgetpu_device: str | None = None,
        **_: Any,
    ):
        super().__init__(
            model,
            threads,
            edgetpu=edgetpu,
            edgetpu_device=edgetpu_device,
            name=name or (str(model) if isinstance(model, (str, Path)) else None),
        )
        meta = self.metadata or {}
        self.classes: list[str] = list(meta["classes"])
        self.window: int = int(meta["window"])
        self.fps: float = float(meta["fps"])
        self.mean = np.asarray(meta["mean"], np.float32)
        self.std = np.asarray(meta["std"], np.float32)
        self.meta = meta
        self._in, self._out = self.inputs[0], self.output_specs[0]
        if self._in.shape != (1, self.window, FEATURES_PER_FRAME):
            raise ModelError(
                f"{self.name} takes input {self._in.shape}, expected (1, {self.window}, {FEATURES_PER_FRAME}).",
                "re-export it.",
            )

    def _check_metadata(self, meta: dict[str, Any] | None) -> None:
        if not meta or model_type(meta) != MODEL_TYPE:
            raise ModelError(
                f"{self.name} is not an edgepose action classifier (no action metadata).",
                "export it with `edgepose actions train`.",
            )
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"{self.name} was trained on feature version {meta.get('feature_version')}, this edgepose computes version {FEATURE_VERSION}.",
                "retrain it with this edgepose version.",
            )

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.invoke(self._in.quantize(x))
        return self.output(self._out)

    def standardise(self, feats: np.ndarray) -> np.ndarray:
        return np.clip((feats - self.mean) / self.std, -8.0, 8.0).astype(np.float32)

    def predict(self, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Class probabilities for one window of ``self.window`` frames at ``self.fps``."""
        x = self.standardise(batch_features(np.asarray(keypoints)[None], np.asarray(visible)[None]))
        logits = self._run(x)
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def predict_windows(
        self,
        keypoints: np.ndarray,
        visible: np.ndarray,
        sizes: np.ndarray | None = None,
        centres: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(N, C)`` probabilities, each exactly what :meth:`predict` gives for that window alone.

        ``sizes``/``centres``: the frames' torso sizes and body centres, if known (see ``batch_features``).

        The features of all windows are built in one call (that is where a window's time goes: about
        200 us of numpy calls against 5 us for an invoke here); each window is then invoked on its own
        and its softmax taken as :meth:`predict` does, so no batch size or reduction order can shift a bit.
        """
        x = self.standardise(batch_features(keypoints, visible, sizes, centres))
        out = np.empty((len(x), len(self.classes)), np.float32)
        for j in range(len(x)):
            logits = self._run(x[j : j + 1])
            e = np.exp(logits - logits.max())
            out[j] = e / e.sum()
        return out

    def predict_batch(self, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """``(N, C)`` probabilities (one interpreter call per window: the model has batch 1)."""
        x = self.standardise(batch_features(keypoints, visible))
        logits = np.stack([self._run(w[None]) for w in x]) if len(x) else np.zeros((0, len(self.classes)), np.float32)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
