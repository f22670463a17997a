"""The converter's entry point: one source, one precision, one ``.tflite`` with metadata."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgepose.model.flatbuf import read_metadata, write_metadata

from . import edgetpu as etpu
from .errors import ConvertError
from .model_types import PRECISIONS
from .sizes import check_input_size
from .sources import SourceModel, load_source
from .tflite import ROUNDINGS, QuantOptions, TFLiteRunner, convert_function, map_output_roles, representative_dataset

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    path: Path
    precision: str
    size_bytes: int
    metadata: dict[str, Any]
    #: max |converted - source| per role on the probe input (dequantized for int8)
    max_abs_diff: dict[str, float]
    compat: etpu.CompatReport | None = None
    compiled: etpu.CompileResult | None = None
    notes: list[str] = field(default_factory=list)


def probe_input(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth, image-like deterministic input in [-1, 1] (noise would saturate quantized ranges)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(-1, 1, (max(2, size[0] // 16), max(2, size[1] // 16), 3)).astype(np.float32)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC).clip(-1, 1)[None]


def default_output_path(src: SourceModel, precision: str, size: tuple[int, int], out_dir: Path = Path(".")) -> Path:
    return Path(out_dir) / f"{src.name}_{size[0]}_{size[1]}_{precision}.tflite"


def convert(
    source: SourceModel | str | Path,
    precision: str,
    input_size: tuple[int, int],
    out: str | Path | None = None,
    *,
    calibration: Sequence[np.ndarray] | None = None,
    quant: QuantOptions = QuantOptions(),
    edgetpu: bool = False,
    name: str | None = None,
    progress: bool | None = None,
) -> ConvertResult:
    """Convert ``source`` and write ``out`` (a ``.tflite`` with edgepose metadata)."""
    if precision not in PRECISIONS:
        raise ConvertError(f"unknown precision {precision!r}.", f"use one of {', '.join(PRECISIONS)}.")
    if edgetpu and precision != "int8":
        raise ConvertError(
            f"--edgetpu needs --precision int8 (got {precision}).",
            "the Edge TPU runs full-integer models only: add --precision int8.",
        )
    src = source if isinstance(source, SourceModel) else load_source(source)
    if src.fixed_input_size and tuple(input_size) != src.fixed_input_size:
        raise ConvertError(
            f"{src.path.name} has a fixed input size {src.fixed_input_size[0]}x{src.fixed_input_size[1]}, not {input_size[0]}x{input_size[1]}.",
            f"use --input-size {src.fixed_input_size[0]}x{src.fixed_input_size[1]} or export the source with a flexible input.",
        )
    h, w = check_input_size(tuple(input_size), src.output_stride) if src.model_type.spatial else tuple(input_size)
    fn = src.function(h, w)
    rep = None
    notes: list[str] = []
    quant_meta: dict[str, Any] | None = None
    if precision == "int8":
        if not calibration:
            raise ConvertError(
                "int8 needs calibration images.",
                "pass --calibration FOLDER_OR_VIDEO (50-300 images like the device will see).",
            )
        rep = representative_dataset(calibration, (h, w), mirror=quant.mirror, progress=progress)
        if quant.rounding not in ROUNDINGS:
            raise ConvertError(f"unknown rounding {quant.rounding!r}.", f"use {', '.join(ROUNDINGS)}.")
        equalized = 0
        rounded = {"depthwise": 0, "conv": 0}
        rewrite = quant.equalize or quant.rounding != "nearest"
        if rewrite and src.graph is not None:
            fn, equalized, rounded = _rewritten_function(src, calibration, (h, w), quant, progress)
        elif rewrite:
            notes.append(
                "output-aware rounding and equalization need a GraphDef source (.pb, checkpoint, tfjs); this model uses nearest rounding."
            )
        quant_meta = {
            "io_type": quant.io_type,
            "per_channel": quant.per_channel,
            "float_heads": quant.float_heads and not edgetpu,
            "equalized_layers": equalized,
            "rounding": quant.rounding if src.graph is not None else "nearest",
            "rounded_layers": rounded,
            "calibration_images": len(calibration) * (2 if quant.mirror else 1),
        }
    buf = convert_function(fn, precision, rep, quant, edgetpu=edgetpu)

    # Which output is which: run both on the same input and pair them numerically.
    x = probe_input((h, w))
    ref = src.run(x)
    outs = TFLiteRunner(buf)(x)
    roles = map_output_roles(outs, ref)
    diffs = {r: float(np.max(np.abs(outs[n] - ref[r]))) for r, n in roles.items()}
    meta = src.model_type.metadata(
        name=name or src.name,
        architecture=src.architecture,
        multiplier=src.multiplier,
        output_stride=src.output_stride,
        input_size=(h, w),
        outputs=roles,
        source=src.source_label,
        precision=precision,
    )
    if quant_meta:
        meta["quantization"] = quant_meta
    buf = write_metadata(buf, meta)
    out_path = Path(out) if out else default_output_path(src, precision, (h, w))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(buf)
    res = ConvertResult(out_path, precision, len(buf), meta, diffs, notes=notes)
    if precision == "int8":
        res.compat = etpu.compatibility_report(buf)
    if edgetpu:
        if res.compat and res.compat.cpu_ops:
            res.notes.append(
                f"{len(res.compat.cpu_ops)} op(s) would run on the CPU: "
                + ", ".join(sorted({o.op for o in res.compat.cpu_ops}))
            )
        if etpu.find_compiler() is None:
            res.notes.append(
                f"{etpu.COMPILER} is not on PATH, so the Edge TPU model was not compiled; {out_path.name} is Edge TPU-ready. To compile: {etpu.INSTALL_HINT}"
            )
        else:
            res.compiled = etpu.compile_model(out_path)
            compiled = res.compiled.path.read_bytes()
            meta_tpu = dict(read_metadata(compiled) or meta)
            meta_tpu["precision"] = "edgetpu"
            res.compiled.path.write_bytes(write_metadata(compiled, meta_tpu))
            res.notes.append(
                f"compiled {res.compiled.path.name}: {res.compiled.ops_on_tpu} op(s) on the Edge TPU, {res.compiled.ops_on_cpu} on the CPU."
            )
    return res


def _rewritten_function(
    src: SourceModel,
    calibration: Sequence[np.ndarray],
    size: tuple[int, int],
    quant: QuantOptions,
    progress: bool | None = False,
):
    """The source's function after the quantization-friendly graph rewrites, with their layer counts.

    Both rewrites use the calibration images only and keep the float function (up to the
    rounding they are meant to anticipate).
    """
    from .calibration import augment, preprocess
    from .equalize import activation_maxima, equalize, find_chains
    from .rounding import find_convs, find_depthwise, input_moments, patch_moments, round_convs, round_depthwise
    from .sources import with_graph

    g = src.graph
    gd = g.graph_def
    inputs = [preprocess(i, size) for i in (augment(calibration) if quant.mirror else calibration)]
    equalized = 0
    rounded = {"depthwise": 0, "conv": 0}
    if quant.equalize:
        chains = find_chains(gd)
        if chains:
            gd = equalize(
                gd,
                activation_maxima(gd, g.input_name, chains, inputs, adapt=g.adapt),
                chains,
                quant.max_scale,
                quant.headroom,
            )
            equalized = len(chains)
    if quant.rounding in ("all", "depthwise"):
        layers = find_depthwise(gd)
        if layers:
            gd = round_depthwise(
                gd, layers, patch_moments(gd, g.input_name, layers, inputs, adapt=g.adapt, progress=progress)
            )
            rounded["depthwise"] = len(layers)
    if quant.rounding == "all":
        convs = find_convs(gd)
        if convs:
            # Statistics after the depthwise rounding: each layer sees the inputs the rounded model produces.
            gd = round_convs(
                gd, convs, input_moments(gd, g.input_name, convs, inputs, adapt=g.adapt, progress=progress)
            )
            rounded["conv"] = len(convs)
    return with_graph(src, gd).function(*size), equalized, rounded
