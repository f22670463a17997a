"""PoseNet keypoint models: loading, pre-processing, inference and decoding.

Everything the runtime needs is read from the model itself: input size and
dtype, output stride, which output is which head, whether heatmaps are logits
or sigmoid scores, and (for Coral's ``*_decoder`` builds) the decoder settings
of the ``PosenetDecoderOp``, which is cut off and replaced by edgepose's own
decoder (:mod:`edgepose.decode`) so that no custom-op library is needed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..decode import select_decoder, warm_up
from ..decode.heads import Heads, QuantizedHeads
from ..decode.single import decode_single_pose
from ..errors import ModelError
from ..preprocess import FILTERS, Transform, fit_to_input
from ..types import NUM_KEYPOINTS, Pose, poses_of
from . import flatbuf
from .base import TensorSpec, TFLiteModel
from .runtime import DelegateSpec

log = logging.getLogger(__name__)

#: Output roles and the channel count each must have.
ROLE_CHANNELS = {"heatmaps": 17, "short_offsets": 34, "mid_offsets": 64, "displacement_fwd": 32, "displacement_bwd": 32}


@dataclass
class ModelInfo:
    """What was detected about a model (``edgepose models info`` prints it)."""

    name: str
    input_height: int
    input_width: int
    input_dtype: str
    output_stride: int
    heatmap_activation: str
    outputs: dict[str, str]
    edgetpu: bool
    decoder_op: dict[str, Any] | None
    metadata: dict[str, Any] | None
    runtime: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _producer_op(model_t, tensor_index: int) -> str | None:
    for op in model_t.subgraphs[0].operators:
        if tensor_index in list(op.outputs):
            return flatbuf.op_code_name(model_t, op.opcodeIndex)
    return None


class PoseNetModel(TFLiteModel):
    """A PoseNet keypoint model ready to run on one image at a time."""

    model_type = "posenet"

    def __init__(
        self,
        model: str | Path | bytes,
        threads: int = 2,
        *,
        resize: str = "stretch",
        edgetpu: str = "auto",
        edgetpu_device: str | None = None,
        resize_filter: str = "antialias",
        decoder: str | None = None,
        delegate: DelegateSpec | None = None,
    ):
        # The multi-pose decoder: numba when it loads (EDGEPOSE_DECODER / decoder= choose), compiled or
        # loaded from its cache below (for the heads' dtype) so that the first frame does not pay for it.
        self.decoder_name, self._decode_multiple_poses = select_decoder(decoder)
        self.resize = resize
        if resize_filter not in FILTERS:
            raise ModelError(f"unknown resize filter {resize_filter!r}.", f"use one of {', '.join(FILTERS)}.")
        #: How frames are shrunk to the input (edgepose.preprocess): ``antialias`` by default.
        self.resize_filter = resize_filter
        super().__init__(model, threads, edgetpu=edgetpu, edgetpu_device=edgetpu_device, delegate=delegate)
        self._setup_input()
        self._setup_outputs(self.model_t)
        warm_up(self.decoder_name, self._raw_heads or "float32")

    def _prepare(self, buf: bytes) -> bytes:
        cut, self.decoder_op = flatbuf.cut_decoder_op(buf, self.name)
        return cut

    # ------------------------------------------------------------------ setup
    def _setup_input(self) -> None:
        spec = self.single_image_input("a PoseNet", "pass a PoseNet .tflite model.")
        self.input_spec = spec
        self.input_index = spec.index
        _, self.input_height, self.input_width, _ = spec.shape
        self.input_dtype = spec.dtype
        lo, hi = (self.metadata or {}).get("input", {}).get("range", [-1.0, 1.0])  # PoseNet MobileNet: [-1, 1]
        qa, qb = spec.pixel_affine(lo, hi, self.name)  # tensor value = pixel * qa + qb
        self._input_affine: tuple[float, float] | None = (qa, qb)
        if spec.quantized:
            shift = 0 if self.input_dtype == np.uint8 else -128
            if abs(qa - 1.0) < 0.01 and abs(qb - shift) < 0.6:
                self._input_affine = None  # the raw pixels are the quantized input (Coral)

    def _setup_outputs(self, model_t) -> None:
        details = self.output_specs
        named = (self.metadata or {}).get("outputs") or {}
        specs: dict[str, TensorSpec] = {}
        by_name = {d.name: d for d in details}
        for role, tname in named.items():
            if role in ROLE_CHANNELS and tname in by_name:
                specs[role] = by_name[tname]
        if not specs:
            specs = self._guess_roles(details)
        have = set(specs)
        if not (
            {"heatmaps", "short_offsets"} <= have
            and ("mid_offsets" in have or {"displacement_fwd", "displacement_bwd"} <= have)
        ):
            shapes = {d.name: list(d.shape) for d in details}
            raise ModelError(
                f"{self.name} does not have PoseNet's outputs (heatmaps 17, offsets 34, displacements 2x32 or 64 channels); it has {shapes}.",
                "pass a PoseNet keypoint model (e.g. 'edgepose models list'), or convert yours with 'edgepose convert'.",
            )
        for role, spec in specs.items():
            want, got = ROLE_CHANNELS[role], spec.shape[-1]
            if got != want:
                raise ModelError(
                    f"{self.name}: output {spec.name} ({role}) has {got} channels, expected {want}.",
                    "re-convert the model.",
                )
        self.outputs = specs
        self.grid_height, self.grid_width = specs["heatmaps"].shape[1:3]
        meta = self.metadata or {}
        stride = meta.get("output_stride") or (self.decoder_op.stride if self.decoder_op else None)
        if not stride:
            stride = round((self.input_height - 1) / max(self.grid_height - 1, 1))
        self.output_stride = int(stride)
        act = meta.get("heatmap_activation")
        if act is None:
            tensor_idx = next(
                i
                for i, t in enumerate(model_t.subgraphs[0].tensors)
                if flatbuf._tensor_name(t) == specs["heatmaps"].name
            )
            act = "sigmoid" if _producer_op(model_t, tensor_idx) == "LOGISTIC" else "logits"
        self.heatmap_activation = act
        self._heat_idx = specs["heatmaps"].index
        # Heads handed over as the model output them (QuantizedHeads: the compiled decoder dequantizes only
        # what it reads) when all three are integers of one dtype and need no other conversion.
        roles = tuple(specs[r] for r in ("heatmaps", "short_offsets", "mid_offsets") if r in specs)
        self._raw_heads: str | None = None
        if (
            act == "logits"
            and len(roles) == 3
            and all(r.quantized and r.scale > 0 and r.dtype == roles[0].dtype for r in roles)
        ):
            self._raw_heads = str(roles[0].dtype)
            self._raw_specs = roles
            self._raw_quant = tuple((s.scale, s.zero_point) for s in roles)

    def _guess_roles(self, details: list[TensorSpec]) -> dict[str, TensorSpec]:
        specs: dict[str, TensorSpec] = {}
        pairs = []
        for d in details:
            c = d.shape[-1] if len(d.shape) == 4 else -1
            n = d.name.lower()
            if c == 17:
                specs["heatmaps"] = d
            elif c == 34:
                specs["short_offsets"] = d
            elif c == 64:
                specs["mid_offsets"] = d
            elif c == 32:
                pairs.append(d)
                if "fwd" in n or "forward" in n:
                    specs["displacement_fwd"] = d
                elif "bwd" in n or "backward" in n:
                    specs["displacement_bwd"] = d
        if len(pairs) == 2 and not ({"displacement_fwd", "displacement_bwd"} <= set(specs)):
            raise ModelError(
                f"{self.name} has two 32-channel displacement outputs ({pairs[0].name}, {pairs[1].name}) that cannot be told apart by name.",
                "re-convert with 'edgepose convert', which records output roles in the model's metadata.",
            )
        return specs

    # ------------------------------------------------------------------ inference
    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_height, self.input_width

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Transform]:
        """Resize and convert a BGR uint8 image into the model's input tensor."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            shape = None if image_bgr is None else image_bgr.shape
            raise ModelError(
                f"expected a BGR image of shape (H, W, 3), got {shape}.",
                "pass a colour image (grayscale images: cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)).",
            )
        # The one pre-processing function, shared with the converter's calibration and report.
        rgb, tr = fit_to_input(image_bgr, self.input_height, self.input_width, self.resize, self.resize_filter)
        if self._input_affine is None:
            tensor = rgb if self.input_dtype == np.uint8 else (rgb.astype(np.int16) - 128).astype(np.int8)
        else:
            a, b = self._input_affine
            x = rgb.astype(np.float32) * np.float32(a) + np.float32(b)
            if self.input_dtype == np.float32:
                tensor = x
            else:
                tensor = self.input_spec.cast(x)
        return tensor[None], tr

    def heads(self) -> Heads:
        """The last invocation's outputs, dequantized into :class:`Heads`."""
        o = self.outputs
        if self._raw_heads:
            # get_tensor copies: the arrays stay valid while the next frame is invoked (the pipeline overlaps them).
            heat, short, mid = (self.interpreter.get_tensor(s.index)[0] for s in self._raw_specs)
            return QuantizedHeads((heat, short, mid), self._raw_quant, self.output_stride)
        heat = self.output(o["heatmaps"])
        if self.heatmap_activation == "sigmoid":
            p = np.clip(heat, 1e-6, 1 - 1e-6)
            heat = np.log(p) - np.log1p(-p)
        if "mid_offsets" in o:
            mid = self.output(o["mid_offsets"])
        else:
            mid = np.concatenate([self.output(o["displacement_fwd"]), self.output(o["displacement_bwd"])], axis=-1)
        return Heads(heat, self.output(o["short_offsets"]), mid, self.output_stride)

    def infer(self, image_bgr: np.ndarray) -> tuple[Heads, Transform]:
        tensor, tr = self.preprocess(image_bgr)
        self.invoke(tensor)
        return self.heads(), tr

    def decode(
        self,
        heads: Heads,
        transform: Transform,
        max_poses: int | None = None,
        min_pose_score: float | None = None,
        nms_radius: float | None = None,
        mode: str | None = None,
    ) -> list[Pose]:
        """Poses from ``heads``; a setting left ``None`` is the model's own, else edgepose's default."""
        if max_poses is None or min_pose_score is None or nms_radius is None or mode is None:
            s = self.resolved_decoder_settings()
            max_poses = s.max_poses if max_poses is None else max_poses
            min_pose_score = s.min_pose_score if min_pose_score is None else min_pose_score
            nms_radius = s.nms_radius if nms_radius is None else nms_radius
            mode = s.mode if mode is None else mode
        if mode == "single":
            yx, kp, score = decode_single_pose(heads)
            return poses_of(transform.to_source(yx), kp, np.array([score])) if score >= min_pose_score else []
        dec = self._decode_multiple_poses(heads, max_poses, min_pose_score, nms_radius)
        return poses_of(transform.to_source(dec.keypoints_yx), dec.keypoint_scores, dec.pose_scores)

    def estimate(
        self,
        image_bgr: np.ndarray,
        max_poses: int | None = None,
        min_pose_score: float | None = None,
        nms_radius: float | None = None,
        mode: str | None = None,
    ) -> list[Pose]:
        """Poses in ``image_bgr``, keypoints in its pixels, best first."""
        heads, tr = self.infer(image_bgr)
        return self.decode(heads, tr, max_poses, min_pose_score, nms_radius, mode)

    def decoder_settings(self) -> dict[str, Any]:
        """Decoder settings the model carries: Coral's decoder op options, else edgepose metadata's ``decoder`` table, else {}."""
        if self.decoder_op:
            d = self.decoder_op
            return {"max_poses": d.max_detections, "min_pose_score": d.score_threshold, "nms_radius": d.nms_radius}
        table = (self.metadata or {}).get("decoder")
        if isinstance(table, dict):
            from ..decoder_settings import KEYS

            return {k: v for k, v in table.items() if k in KEYS and v is not None}
        return {}

    @property
    def decoder_settings_origin(self) -> str:
        """Where :meth:`decoder_settings` came from (shown by ``run`` and ``models info``)."""
        return "Coral decoder op" if self.decoder_op else "edgepose metadata"

    def resolved_decoder_settings(self, flags: dict[str, Any] | None = None, config: Any = None):
        """Settings in force for this model: flag > device config > model > default (see edgepose.decoder_settings)."""
        from ..decoder_settings import model_settings, resolve_decoder_settings

        settings, origin = model_settings(self)
        return resolve_decoder_settings(flags, config, settings, origin)

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            input_height=self.input_height,
            input_width=self.input_width,
            input_dtype=str(self.input_dtype),
            output_stride=self.output_stride,
            heatmap_activation=self.heatmap_activation,
            outputs={role: s.name for role, s in self.outputs.items()},
            edgetpu=self.edgetpu,
            decoder_op=None
            if not self.decoder_op
            else {
                "max_detections": self.decoder_op.max_detections,
                "score_threshold": round(self.decoder_op.score_threshold, 4),
                "nms_radius": self.decoder_op.nms_radius,
                "stride": self.decoder_op.stride,
            },
            metadata=self.metadata,
            runtime=self.runtime + (f" (Edge TPU {self.edgetpu_device})" if self.edgetpu_device else ""),
            extra={"decoder": self.decoder_name},
        )


def load_posenet(model: str | Path | bytes, threads: int = 2, **kw: Any) -> PoseNetModel:
    """Open a PoseNet ``.tflite`` (path or bytes) with the best available runtime."""
    t = time.perf_counter()
    m = PoseNetModel(model, threads, **kw)
    log.info(
        "loaded %s (%dx%d %s, stride %d, %s, %s decoder) in %.0f ms",
        m.name,
        m.input_width,
        m.input_height,
        m.input_dtype,
        m.output_stride,
        m.runtime,
        m.decoder_name,
        1e3 * (time.perf_counter() - t),
    )
    return m


__all__ = ["NUM_KEYPOINTS", "ModelInfo", "PoseNetModel", "Transform", "load_posenet"]
