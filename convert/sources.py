"""Source models: detect the format, load it, and expose one TensorFlow function.

Every source becomes a :class:`SourceModel` whose ``function(h, w)`` is a
TensorFlow concrete function taking ``float32 [1, h, w, 3]`` RGB in
``[-1, 1]`` and returning ``{role: tensor}`` with heatmaps as *logits* (a
trailing sigmoid in the source is cut off; the runtime applies it). Anything
a source needs to reach that convention (ResNet's ImageNet mean, a combined
mid-offsets output) is built into the function, so the ``.tflite`` needs no
flags at run time.

Formats: TF1 frozen GraphDef (``.pb``), TF1 checkpoint (prefix, ``.index``,
``.meta`` or its directory), TensorFlow.js graph model (``model.json`` +
shards), Keras (``.keras``/``.h5``) and SavedModel directories.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgepose.errors import first_line

from . import tfjs
from .errors import ConvertError, import_tensorflow
from .model_types import POSENET, ModelType

log = logging.getLogger(__name__)

#: tfjs ResNet50 PoseNet adds this to 0..255 RGB input (tfjs-models posenet/resnet.ts).
RESNET_IMAGENET_MEAN = (-123.15, -115.90, -103.06)
#: Side length used to measure a dynamic-size graph's output stride: (129-1)/(n-1).
PROBE_SIDE = 129


@dataclass
class SourceModel:
    name: str
    format: str
    path: Path
    model_type: ModelType
    architecture: str
    multiplier: float
    #: source output name per role (for the report)
    output_names: dict[str, str]
    #: activation the source applied to its heatmap output ("sigmoid" or "logits")
    source_heatmap_activation: str
    #: builds the concrete function for an input size
    _builder: Callable[[int, int], Any]
    fixed_input_size: tuple[int, int] | None = None
    output_stride: int = 0
    #: objects that must stay alive while the functions are used (loaded SavedModels)
    keepalive: list[Any] = field(default_factory=list)
    #: set for GraphDef sources (frozen graph, checkpoint, tfjs): allows graph rewrites before quantization
    graph: Any = None
    _cache: dict[tuple[int, int], Any] = field(default_factory=dict)

    @property
    def source_label(self) -> str:
        return f"{self.format}:{self.path.name}"

    def function(self, h: int, w: int):
        if (h, w) not in self._cache:
            self._cache[(h, w)] = self._builder(h, w)
        return self._cache[(h, w)]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The source executed by TensorFlow on ``x`` ``[1,h,w,3]`` in ``[-1,1]``: ``{role: array}``."""
        tf = import_tensorflow()
        fn = self.function(int(x.shape[1]), int(x.shape[2]))
        out = fn(tf.constant(x, tf.float32))
        return {r: np.asarray(v.numpy()) for r, v in out.items()}


# --------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str:
    p = Path(path)
    if not p.exists():
        # A checkpoint is named by its prefix, which is not a file itself.
        if Path(str(p) + ".index").exists() or Path(str(p) + ".meta").exists():
            return "checkpoint"
        raise ConvertError(
            f"source model {p} does not exist.",
            "check the path (a .pb, checkpoint prefix, model.json, .keras/.h5 or SavedModel directory).",
        )
    if p.is_dir():
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            return "saved_model"
        if any(p.glob("*.index")) or (p / "checkpoint").exists():
            return "checkpoint"
        if tfjs.is_tfjs_model(p):
            return "tfjs"
        raise ConvertError(
            f"directory {p} holds no model edgepose can convert.",
            "pass a SavedModel directory, a TF1 checkpoint directory or a TensorFlow.js model directory.",
        )
    suffix = p.suffix.lower()
    if suffix == ".json":
        return "tfjs"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if suffix in (".index", ".meta") or re.search(r"\.data-\d+-of-\d+$", p.name) or ".ckpt" in p.name:
        return "checkpoint"
    if suffix == ".pb":
        return "frozen_graph"
    if suffix == ".tflite":
        raise ConvertError(
            f"{p} is already a TFLite model.",
            "run it with 'edgepose run --model', or pass the float source model to convert it again.",
        )
    raise ConvertError(
        f"{p} is not a model format the converter knows (suffix {suffix or 'none'!r}).",
        "pass a TF1 frozen graph (.pb), a TF1 checkpoint, a TensorFlow.js model.json, a Keras .keras/.h5 file or a SavedModel directory.",
    )


def load_source(
    path: str | Path,
    model_type: ModelType = POSENET,
    architecture: str | None = None,
    multiplier: float | None = None,
    outputs: dict[str, str] | None = None,
) -> SourceModel:
    """Load any supported source; ``outputs`` maps role -> source output name when names are not recognisable."""
    p = Path(path)
    fmt = detect_format(p)
    tf = import_tensorflow()
    if fmt in ("frozen_graph", "checkpoint", "tfjs"):
        if fmt == "frozen_graph":
            gd = _read_frozen_graph(p, tf)
        elif fmt == "checkpoint":
            gd = _freeze_checkpoint(p, tf, model_type)
        else:
            mj = tfjs.find_model_json(p)
            gd = tfjs.to_graph_def(mj)
        src = _graph_source(gd, p, fmt, model_type, tf, outputs)
    elif fmt == "keras":
        src = _keras_source(p, model_type, tf, outputs)
    else:
        src = _saved_model_source(p, model_type, tf, outputs)
    if architecture:
        src.architecture = architecture
    if multiplier:
        src.multiplier = float(multiplier)
    if model_type is POSENET and src.architecture not in ("mobilenet_v1", "resnet50"):
        raise ConvertError(
            f"cannot tell the architecture of {p.name} from its layer names.",
            "pass --architecture mobilenet_v1 or resnet50 (and --multiplier).",
        )
    src.output_stride = measure_stride(src)
    return src


def measure_stride(src: SourceModel) -> int:
    """Output stride from running the source: (input side - 1) / (output side - 1); 0 for non-grid model types."""
    if not src.model_type.spatial:
        return 0
    h, w = src.fixed_input_size or (PROBE_SIDE, PROBE_SIDE)
    out = src.run(np.zeros((1, h, w, 3), np.float32))
    hh = out[src.model_type.roles[0]].shape[1]
    if hh < 2 or (h - 1) % (hh - 1):
        raise ConvertError(
            f"{src.path.name}: output {hh} rows for input {h}; cannot tell the output stride.",
            "check the source is a PoseNet.",
        )
    return (h - 1) // (hh - 1)


# --------------------------------------------------------------------------- TF1 graphs


def _read_frozen_graph(p: Path, tf):
    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(p.read_bytes())
    except Exception as e:  # DecodeError
        raise ConvertError(
            f"{p} is not a TensorFlow GraphDef ({type(e).__name__}).",
            "pass a frozen .pb (or the SavedModel directory if it is a saved_model.pb).",
        ) from None
    if not gd.node:
        raise ConvertError(f"{p} is an empty GraphDef.", "re-export the frozen graph.")
    if any(n.op in ("VariableV2", "VarHandleOp") for n in gd.node):
        raise ConvertError(
            f"{p} still has variables (not frozen).", "pass its checkpoint instead, or freeze it with freeze_graph."
        )
    return gd


def _checkpoint_prefix(p: Path) -> Path:
    if p.is_dir():
        metas = sorted(p.glob("*.meta")) or sorted(p.glob("*.index"))
        if not metas:
            raise ConvertError(
                f"{p} holds no checkpoint (.meta/.index).", "pass the checkpoint prefix, e.g. checkpoints/model.ckpt."
            )
        return metas[0].with_suffix("")
    s = str(p)
    for suf in (".meta", ".index"):
        if s.endswith(suf):
            return Path(s[: -len(suf)])
    m = re.search(r"\.data-\d+-of-\d+$", s)
    return Path(s[: m.start()]) if m else p


def _freeze_checkpoint(p: Path, tf, model_type: ModelType):
    prefix = _checkpoint_prefix(p)
    meta = Path(str(prefix) + ".meta")
    if not meta.exists():
        raise ConvertError(
            f"checkpoint {prefix} has no .meta graph.",
            "pass the .meta file beside the .index/.data files, or a frozen graph.",
        )
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(str(meta), clear_devices=True)
        except Exception as e:
            raise ConvertError(
                f"cannot read checkpoint graph {meta.name} ({type(e).__name__}: {first_line(e, 300, default='')}).",
                "re-export the checkpoint.",
            ) from None
        gd = graph.as_graph_def()
        outs = _find_outputs(gd, model_type, None)
        with tf.compat.v1.Session(graph=graph) as sess:
            try:
                saver.restore(sess, str(prefix))
            except Exception as e:
                raise ConvertError(
                    f"checkpoint {prefix.name} cannot be restored ({first_line(e, 300)}).",
                    "the .index/.data files are missing or corrupt; copy the whole checkpoint again.",
                ) from None
            names = sorted({n.split(":")[0] for n in outs[0].values()} | set(outs[2]))
            return tf.compat.v1.graph_util.convert_variables_to_constants(sess, gd, names)


_SKIP_SINK_OPS = {
    "NoOp",
    "SaveV2",
    "RestoreV2",
    "Assign",
    "Const",
    "Identity",
    "Placeholder",
    "VariableV2",
    "AssignVariableOp",
}


def _find_outputs(gd, model_type: ModelType, overrides: dict[str, str] | None) -> tuple[dict[str, str], str, list[str]]:
    """(role -> tensor name before any sigmoid, heatmap activation of the source, the graph's raw output node names)."""
    consumers: dict[str, list[str]] = {}
    by_name = {n.name: n for n in gd.node}
    for n in gd.node:
        for i in n.input:
            consumers.setdefault(i.split(":")[0].lstrip("^"), []).append(n.name)
    sinks = [
        n.name
        for n in gd.node
        if n.name not in consumers and n.op not in _SKIP_SINK_OPS and not n.name.startswith("save/")
    ]
    roles: dict[str, str] = {}
    activation = "logits"
    if overrides:
        roles = {r: (v if ":" in v else v + ":0") for r, v in overrides.items()}
    else:
        for s in sinks:
            role = model_type.role_of(_strip_suffixes(s))
            if role is None:
                continue
            if role in roles:
                raise ConvertError(
                    f"two graph outputs look like {role}: {roles[role]} and {s}.",
                    "name the outputs with --outputs heatmaps=NAME,short_offsets=NAME,...",
                )
            roles[role] = s + ":0"
    # A trailing Sigmoid on the heatmap is cut off: converted models output logits.
    hm = roles.get("heatmaps")
    if hm is not None:
        node = by_name.get(hm.split(":")[0])
        if node is not None and node.op == "Sigmoid":
            roles["heatmaps"] = node.input[0] if ":" in node.input[0] else node.input[0] + ":0"
            activation = "sigmoid"
    missing = [
        r
        for r in model_type.roles
        if r not in roles and not any(r in parts and c in roles for c, parts in model_type.composites.items())
    ]
    if missing:
        raise ConvertError(
            f"the graph's outputs ({', '.join(sinks[:8])}) do not include {', '.join(missing)}.",
            "name them with --outputs heatmaps=NAME,short_offsets=NAME,displacement_fwd=NAME,displacement_bwd=NAME.",
        )
    return roles, activation, sinks


def _strip_suffixes(name: str) -> str:
    name = name.split(":")[0]
    parts = [
        p for p in name.split("/") if p not in ("BiasAdd", "Conv2D", "Sigmoid", "Identity", "Squeeze", "add", "Add")
    ]
    return "/".join(parts) or name


def _graph_input(gd) -> str:
    phs = [n for n in gd.node if n.op == "Placeholder"]
    if len(phs) != 1:
        raise ConvertError(
            f"the graph has {len(phs)} inputs ({', '.join(n.name for n in phs)}); PoseNet has one image input.",
            "export the graph with a single image placeholder.",
        )
    return phs[0].name + ":0"


def _guess_architecture(names: list[str]) -> tuple[str, float | None]:
    text = " ".join(names).lower()
    if "resnet" in text:
        return "resnet50", 1.0
    if "mobilenet" in text:
        return "mobilenet_v1", None
    return "unknown", None


def _mobilenet_multiplier(first_conv_out: int | None) -> float:
    # MobileNetV1's first conv has 32 * multiplier filters.
    return round(first_conv_out / 32.0, 2) if first_conv_out else 1.0


def _graph_source(gd, p: Path, fmt: str, model_type: ModelType, tf, overrides) -> SourceModel:
    roles, activation, _ = _find_outputs(gd, model_type, overrides)
    input_name = _graph_input(gd)
    names = [n.name for n in gd.node]
    arch, mult = _guess_architecture(names)
    if arch == "mobilenet_v1" and mult is None:
        first = next((n for n in gd.node if n.op == "Const" and re.search(r"conv2d_0/weights$", n.name, re.I)), None)
        dims = [d.size for d in first.attr["value"].tensor.tensor_shape.dim] if first is not None else []
        mult = _mobilenet_multiplier(dims[-1] if len(dims) == 4 else None)
    src = SourceModel(
        name=_model_name(p, arch, mult),
        format=fmt,
        path=p,
        model_type=model_type,
        architecture=arch,
        multiplier=float(mult or 1.0),
        output_names={r: v.split(":")[0] for r, v in roles.items()},
        source_heatmap_activation=activation,
        _builder=lambda h, w: None,
        fixed_input_size=_fixed_size(gd, input_name),
    )
    src.graph = GraphParts(gd, input_name, roles, arch == "resnet50")
    src._builder = _graph_builder(src.graph, p, model_type, tf)
    return src


@dataclass
class GraphParts:
    """A GraphDef source's graph, its input tensor and its role tensors (used by graph rewrites)."""

    graph_def: Any
    input_name: str
    roles: dict[str, str]
    resnet_input: bool = False

    def adapt(self, tf, x):
        return _resnet_adapter(tf, x) if self.resnet_input else x


def _graph_builder(parts: GraphParts, p: Path, model_type: ModelType, tf):
    order = list(parts.roles)

    def build(h: int, w: int):
        def body(x):
            outs = tf.graph_util.import_graph_def(
                parts.graph_def,
                input_map={parts.input_name: parts.adapt(tf, x)},
                return_elements=[parts.roles[r] for r in order],
                name="",
            )
            return _expand_composites(tf, model_type, dict(zip(order, outs)))

        try:
            return tf.compat.v1.wrap_function(body, [tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
        except (ValueError, TypeError) as e:
            raise ConvertError(
                f"{p.name} cannot be imported by TensorFlow ({first_line(e, 300)}).",
                "check the graph was exported by TensorFlow 1.x/2.x with standard ops.",
            ) from None

    return build


def with_graph(src: SourceModel, graph_def) -> SourceModel:
    """A copy of a GraphDef source running ``graph_def`` (same input, roles and metadata)."""
    import copy

    tf = import_tensorflow()
    new = copy.copy(src)
    new.graph = GraphParts(graph_def, src.graph.input_name, src.graph.roles, src.graph.resnet_input)
    new._builder = _graph_builder(new.graph, src.path, src.model_type, tf)
    new._cache = {}
    return new


def _fixed_size(gd, input_name: str) -> tuple[int, int] | None:
    node = next(n for n in gd.node if n.name == input_name.split(":")[0])
    dims = [d.size for d in node.attr["shape"].shape.dim]
    if len(dims) == 4 and dims[1] > 0 and dims[2] > 0:
        return int(dims[1]), int(dims[2])
    return None


def _resnet_adapter(tf, x):
    # [-1, 1] -> 0..255 RGB, then the ImageNet mean the tfjs ResNet50 PoseNet expects.
    return (x + 1.0) * 127.5 + tf.constant(RESNET_IMAGENET_MEAN, tf.float32)


def _expand_composites(tf, model_type: ModelType, outs: dict[str, Any]) -> dict[str, Any]:
    res = {}
    for r, t in outs.items():
        parts = model_type.composites.get(r)
        if parts:
            for part, piece in zip(parts, tf.split(t, len(parts), axis=-1)):
                res[part] = tf.identity(piece, name=part)
        else:
            res[r] = t
    return {r: res[r] for r in model_type.roles}


def _model_name(p: Path, arch: str, mult: float | None) -> str:
    if arch == "mobilenet_v1" and mult:
        return f"posenet_mobilenet_v1_{int(round(mult * 100)):03d}"
    if arch == "resnet50":
        return "posenet_resnet50"
    stem = p.stem if p.is_file() else p.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)


# --------------------------------------------------------------------------- Keras / SavedModel


def _roles_from_names(
    names: list[str], model_type: ModelType, overrides: dict[str, str] | None, what: str
) -> dict[str, str]:
    if overrides:
        bad = [v for v in overrides.values() if v not in names]
        if bad:
            raise ConvertError(
                f"{what} has no output named {bad[0]} (it has {', '.join(names)}).", "fix the --outputs names."
            )
        return {r: v for r, v in overrides.items()}
    roles: dict[str, str] = {}
    for n in names:
        role = model_type.role_of(n)
        if role and role not in roles:
            roles[role] = n
    missing = [
        r
        for r in model_type.roles
        if r not in roles and not any(r in parts and c in roles for c, parts in model_type.composites.items())
    ]
    if missing:
        raise ConvertError(
            f"{what} outputs ({', '.join(names)}) do not include {', '.join(missing)}.",
            "name them with --outputs heatmaps=NAME,short_offsets=NAME,displacement_fwd=NAME,displacement_bwd=NAME.",
        )
    return roles


def _keras_load(p: Path):
    errors = []
    try:
        import keras  # Keras 3

        return keras.models.load_model(p, compile=False)
    except Exception as e:
        errors.append(f"keras: {type(e).__name__}: {first_line(e, default='')}")
    try:
        import tf_keras  # legacy .h5 files

        return tf_keras.models.load_model(p, compile=False)
    except Exception as e:
        errors.append(f"tf_keras: {type(e).__name__}: {first_line(e, default='')}")
    raise ConvertError(
        f"{p} cannot be loaded as a Keras model ({'; '.join(errors)}).",
        "save it with model.save('model.keras') (or pip install tf-keras for legacy .h5).",
    )


def _keras_source(p: Path, model_type: ModelType, tf, overrides) -> SourceModel:
    model = _keras_load(p)
    out_names = [str(n) for n in getattr(model, "output_names", [])] or [t.name for t in model.outputs]
    roles = _roles_from_names(out_names, model_type, overrides, p.name)
    index = {n: i for i, n in enumerate(out_names)}
    shape = tuple(model.inputs[0].shape)
    fixed = (int(shape[1]), int(shape[2])) if shape[1] and shape[2] else None
    layer_names = [layer.name for layer in model.layers]
    arch, mult = _guess_architecture(layer_names + [model.name])
    if arch == "mobilenet_v1" and mult is None:
        conv0 = next(
            (
                layer
                for layer in model.layers
                if re.search(r"conv2d_0|conv1$|conv_0", layer.name, re.I) and hasattr(layer, "filters")
            ),
            None,
        )
        mult = _mobilenet_multiplier(getattr(conv0, "filters", None))

    def build(h: int, w: int):
        @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
        def fn(x):
            y = model(x, training=False)
            if isinstance(y, dict):
                outs = {r: y[n] for r, n in roles.items()}
            else:
                ys = y if isinstance(y, (list, tuple)) else [y]
                outs = {r: ys[index[n]] for r, n in roles.items()}
            return _expand_composites(tf, model_type, outs)

        return fn.get_concrete_function()

    return SourceModel(
        name=_model_name(p, arch, mult),
        format="keras",
        path=p,
        model_type=model_type,
        architecture=arch,
        multiplier=float(mult or 1.0),
        output_names=dict(roles),
        source_heatmap_activation="logits",
        _builder=build,
        fixed_input_size=fixed,
        keepalive=[model],
    )


def _saved_model_source(p: Path, model_type: ModelType, tf, overrides) -> SourceModel:
    try:
        loaded = tf.saved_model.load(str(p))
    except Exception as e:
        raise ConvertError(
            f"{p} cannot be loaded as a SavedModel ({type(e).__name__}: {first_line(e, default='')}).",
            "re-export it with tf.saved_model.save.",
        ) from None
    sig = loaded.signatures.get("serving_default") if hasattr(loaded, "signatures") else None
    if sig is None:
        raise ConvertError(
            f"{p} has no serving_default signature.", "export it with signatures={'serving_default': fn}."
        )
    out_names = list(sig.structured_outputs.keys())
    roles = _roles_from_names(out_names, model_type, overrides, p.name)
    in_specs = sig.structured_input_signature[1]
    if len(in_specs) != 1:
        raise ConvertError(
            f"{p} serving_default takes {len(in_specs)} inputs; PoseNet takes one image.",
            "export a single-input signature.",
        )
    in_key, in_spec = next(iter(in_specs.items()))
    fixed = (
        (int(in_spec.shape[1]), int(in_spec.shape[2]))
        if in_spec.shape.rank == 4 and in_spec.shape[1] and in_spec.shape[2]
        else None
    )
    arch, mult = _guess_architecture([v.name for v in getattr(loaded, "variables", [])] + [p.name])
    if arch == "mobilenet_v1" and mult is None:
        first = next((v for v in loaded.variables if len(v.shape) == 4 and v.shape[2] == 3), None)
        mult = _mobilenet_multiplier(int(first.shape[-1]) if first is not None else None)

    def build(h: int, w: int):
        @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
        def fn(x):
            y = sig(**{in_key: x})
            return _expand_composites(tf, model_type, {r: y[n] for r, n in roles.items()})

        return fn.get_concrete_function()

    return SourceModel(
        name=_model_name(p, arch, mult),
        format="saved_model",
        path=p,
        model_type=model_type,
        architecture=arch,
        multiplier=float(mult or 1.0),
        output_names=dict(roles),
        source_heatmap_activation="logits",
        _builder=build,
        fixed_input_size=fixed,
        keepalive=[loaded],
    )
