"""Camera relocalization on the device: one image in, the camera's 6-DoF pose out (no TensorFlow).

The model is a PoseNet of Kendall et al. (ICCV 2015) exported by
``edgepose reloc train``: it regresses the camera position ``x`` (3) and the
orientation quaternion ``q`` (4, ``w x y z``). Everything needed to run it is in
the ``.tflite``'s edgepose metadata (``model_type = "relocalization"``): input
size and value range, which output is which, and the position normalisation
of the training set. The quaternion is normalised here, at test time, as in
the paper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError
from ..model.base import TensorSpec, TFLiteModel, model_type
from .geometry import normalize_quaternion

log = logging.getLogger(__name__)

MODEL_TYPE = "relocalization"
#: How images become the model input: scale to cover the input, centre crop (Kendall: shorter side, centre crop).
RESIZE_MODE = "shorter_side_center_crop"


@dataclass
class CameraPose:
    """The camera's pose in the model's scene: centre ``position`` and world-to-camera quaternion ``orientation``."""

    position: np.ndarray  # (3,) x, y, z in the scene's units
    orientation: np.ndarray  # (4,) w, x, y, z, unit norm, w >= 0
    model: str = ""

    def to_dict(self, ndigits: int = 4) -> dict[str, Any]:
        """The ``camera_pose`` payload (schemas/camera_pose.schema.json)."""
        return {
            "position": [round(float(v), ndigits) for v in self.position],
            "orientation": [round(float(v), ndigits + 2) for v in self.orientation],
            "model": self.model,
        }


def crop_to_input(image_bgr: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Scale ``image_bgr`` so it covers ``size`` (h, w), centre-crop to it, return RGB uint8.

    For a square input this is Kendall's "resize the shorter side, centre crop".
    Training uses this same function, so the device sees what the model was trained on.
    """
    if image_bgr is None or getattr(image_bgr, "ndim", 0) != 3 or image_bgr.shape[2] != 3:
        shape = None if image_bgr is None else getattr(image_bgr, "shape", None)
        raise ModelError(
            f"expected a BGR image of shape (H, W, 3), got {shape}.",
            "pass a colour image (grayscale: cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)).",
        )
    th, tw = size
    h, w = image_bgr.shape[:2]
    s = max(th / h, tw / w)
    nh, nw = max(th, round(h * s)), max(tw, round(w * s))
    img = (
        image_bgr
        if (nh, nw) == (h, w)
        else cv2.resize(image_bgr, (nw, nh), interpolation=interpolation if s < 1 else cv2.INTER_LINEAR)
    )
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    return cv2.cvtColor(np.ascontiguousarray(img[y0 : y0 + th, x0 : x0 + tw]), cv2.COLOR_BGR2RGB)


class CameraPoseEstimator(TFLiteModel):
    """A relocalization ``.tflite`` ready to estimate camera poses, one image at a time."""

    model_type = MODEL_TYPE
    what = "relocalization model"
    missing_fix = "train one with 'edgepose reloc train' and pass its .tflite path."

    def __init__(
        self,
        model_path: str | Path | bytes,
        threads: int = 1,
        *,
        edgetpu: str = "auto",
        edgetpu_device: str | None = None,
        **_: Any,
    ):
        super().__init__(model_path, threads, edgetpu=edgetpu, edgetpu_device=edgetpu_device)
        meta = self.metadata or {}
        self.label = str(meta.get("name") or Path(self.name).stem)
        self.scene = meta.get("scene")
        self.units = meta.get("units", "m")
        spec = self.single_image_input("a relocalization model", "re-export the model with 'edgepose reloc train'.")
        self.input_spec = spec
        self.input_size = (spec.shape[1], spec.shape[2])
        self.input_dtype = spec.dtype
        lo, hi = (meta.get("input") or {}).get("range", [-1.0, 1.0])
        a, b = spec.pixel_affine(lo, hi, self.name)
        self._affine = (np.float32(a), np.float32(b))
        self._setup_outputs(meta)
        norm = meta.get("position_normalization") or {}
        self._pos_mean = np.asarray(norm.get("mean", [0.0, 0.0, 0.0]), np.float64)
        self._pos_scale = np.asarray(norm.get("scale", [1.0, 1.0, 1.0]), np.float64)

    def _check_metadata(self, meta: dict[str, Any] | None) -> None:
        if not meta or model_type(meta) != MODEL_TYPE:
            kind = model_type(meta) if meta else "posenet (no edgepose metadata)"
            raise ModelError(
                f"{self.name} is a '{kind}' model, not a camera relocalization model.",
                "pass a .tflite exported by 'edgepose reloc train'.",
            )

    # ------------------------------------------------------------------ setup
    def _setup_outputs(self, meta: dict[str, Any]) -> None:
        details = {d.name: d for d in self.output_specs}
        roles = meta.get("outputs") or {}
        self._outputs: dict[str, TensorSpec] = {}
        for role in ("position", "orientation", "pose"):
            if roles.get(role) in details:
                self._outputs[role] = details[roles[role]]
        if not self._outputs:  # no names recorded: tell them apart by size (3 and 4, or one 7-vector)
            by_size = {int(np.prod(d.shape)): d for d in details.values()}
            if 3 in by_size and 4 in by_size:
                self._outputs = {"position": by_size[3], "orientation": by_size[4]}
            elif 7 in by_size:
                self._outputs = {"pose": by_size[7]}
        ok = {"position", "orientation"} <= set(self._outputs) or "pose" in self._outputs
        if not ok:
            shapes = {n: list(d.shape) for n, d in details.items()}
            raise ModelError(
                f"{self.name} lacks the position (3) and orientation (4) outputs; it has {shapes}.",
                "re-export the model with 'edgepose reloc train'.",
            )

    # ------------------------------------------------------------------ inference
    def preprocess(self, image_bgr: np.ndarray) -> np.ndarray:
        """The ``[1, h, w, 3]`` input tensor for a BGR image."""
        rgb = crop_to_input(image_bgr, self.input_size)
        a, b = self._affine
        x = rgb.astype(np.float32) * a + b
        if self.input_spec.quantized:
            x = self.input_spec.cast(x)
        return x[None]

    def _get(self, spec: TensorSpec) -> np.ndarray:
        return spec.dequantize(self.interpreter.get_tensor(spec.index)).reshape(-1).astype(np.float64)

    def raw(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run one input tensor: (position in scene units, unnormalised quaternion)."""
        self.invoke(tensor)
        if "pose" in self._outputs:
            y = self._get(self._outputs["pose"])
            pos, q = y[:3], y[3:7]
        else:
            pos, q = self._get(self._outputs["position"]), self._get(self._outputs["orientation"])
        return pos * self._pos_scale + self._pos_mean, q

    def estimate(self, image_bgr: np.ndarray) -> CameraPose:
        pos, q = self.raw(self.preprocess(image_bgr))
        return CameraPose(position=pos, orientation=normalize_quaternion(q), model=self.label)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "scene": self.scene,
            "units": self.units,
            "input_size": list(self.input_size),
            "input_dtype": str(self.input_dtype),
            "precision": (self.metadata or {}).get("precision"),
        }


def load_relocalization(path: str | Path, threads: int = 1, **kw: Any) -> CameraPoseEstimator:
    """The model-type loader :func:`edgepose.model.registry.open_model` uses for ``relocalization`` models."""
    return CameraPoseEstimator(
        path, threads=threads, edgetpu=kw.get("edgetpu", "auto"), edgetpu_device=kw.get("edgetpu_device")
    )
