"""``edgepose models``: list, fetch and remove registry models (see edgepose/model/README.md)."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import EdgeposeError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list and download known PoseNet models",
        description="The model registry: official PoseNet models, checked by sha256 and cached locally. "
        "EDGEPOSE_CACHE_DIR moves the cache; EDGEPOSE_MODEL_MIRROR (folder or URL) replaces the download sites.",
    )
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True

    ls = sub.add_parser("list", help="table of known models (name, input, kind, size, cached, verified)")
    ls.add_argument("--kind", choices=["tflite", "tflite+decoder", "edgetpu", "tfjs"], help="only this kind")
    ls.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    ls.set_defaults(func=cmd_list)

    fe = sub.add_parser("fetch", help="download models into the cache (verified by sha256) and print their paths")
    fe.add_argument("names", nargs="*", metavar="NAME", help="model names or aliases (see `edgepose models list`)")
    fe.add_argument("--all", action="store_true", help="every verified model")
    fe.add_argument("--force", action="store_true", help="download again even if cached")
    fe.add_argument(
        "--allow-unverified",
        action="store_true",
        help="allow models without a published sha256 (their computed sha256 is printed and recorded)",
    )
    fe.add_argument("--no-progress", action="store_true", help="no progress bar")
    fe.set_defaults(func=cmd_fetch)

    rm = sub.add_parser("rm", help="remove models from the cache")
    rm.add_argument("names", nargs="*", metavar="NAME")
    rm.add_argument("--all", action="store_true", help="empty the whole model cache")
    rm.set_defaults(func=cmd_rm)

    info = sub.add_parser("info", help="what the runtime detects in a model file or registry model")
    info.add_argument("model", metavar="PATH_OR_NAME")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--config", "-c", help="device config (TOML) whose [decode] settings apply on top of the model's")
    info.set_defaults(func=cmd_info)


def _fmt_size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f}"


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from ..model import zoo

    models = [m for m in zoo.list_models() if args.kind is None or m.kind == args.kind]
    if args.json:
        for m in models:
            print(
                json.dumps(
                    {
                        "name": m.name,
                        "aliases": list(m.aliases),
                        "kind": m.kind,
                        "input_size": list(m.input_size) if m.input_size else None,
                        "output_stride": m.output_stride,
                        "size_bytes": m.size_bytes,
                        "cached": m.cached,
                        "verified": m.verified,
                        "path": str(m.path),
                        "urls": list(m.urls),
                        "description": m.description,
                    }
                )
            )
        return 0
    default = zoo.lookup(zoo.DEFAULT_MODEL)
    rows = [
        [
            m.name + (" (default)" if default is not None and default.name == m.name else ""),
            f"{m.input_size[0]}x{m.input_size[1]}" if m.input_size else "any",
            m.kind,
            _fmt_size(m.size_bytes),
            "yes" if m.cached else "no",
            "sha256" if m.verified else "no",
        ]
        for m in models
    ]
    print(format_table(rows, ["NAME", "INPUT HxW", "KIND", "SIZE MB", "CACHED", "VERIFIED"]))
    print(
        f"\ncache: {zoo.models_dir()}  (aliases: `edgepose models list --json`; unverified models need "
        "`edgepose models fetch NAME --allow-unverified`)"
    )
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..model import zoo

    names = list(args.names)
    if args.all:
        names += [m.name for m in zoo.list_models() if m.verified]
    if not names:
        raise EdgeposeError("no model named.", "give one or more names from `edgepose models list`, or --all.")
    progress = False if args.no_progress else None
    failed = 0
    for name in dict.fromkeys(names):
        try:
            path = zoo.fetch(name, force=args.force, allow_unverified=args.allow_unverified, progress=progress)
        except EdgeposeError as e:
            if len(names) == 1:
                raise
            # Keep going so one bad name does not block the others; report each on one line.
            print(f"edgepose models fetch: error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(path)
    return 2 if failed else 0


def cmd_rm(args: argparse.Namespace) -> int:
    from ..model import zoo

    if not args.all and not args.names:
        raise EdgeposeError("nothing to remove.", "give model names, or --all to empty the model cache.")
    removed = zoo.clear_cache(None) if args.all else [p for n in args.names for p in zoo.clear_cache(n)]
    for p in removed:
        print(f"removed {p}")
    return 0


def _static_info(path, reason: str) -> dict:
    """What the flatbuffer says without running it (an Edge TPU model on a machine without the TPU)."""
    from ..model import flatbuf

    buf = path.read_bytes()
    cut, op = flatbuf.cut_decoder_op(buf, path.name)
    model_t = flatbuf.load_model_t(cut, path.name)
    s = flatbuf._schema()
    types = {v: k.lower() for k, v in vars(s.TensorType).items() if k.isupper()}
    sg = model_t.subgraphs[0]
    (inp,) = [sg.tensors[i] for i in sg.inputs]
    _, h, w, _ = (int(v) for v in inp.shape)
    outputs = {}
    if op is not None:
        outputs = dict(zip(("heatmaps", "short_offsets", "mid_offsets"), op.input_names))
    return {
        "name": path.name,
        "input_height": h,
        "input_width": w,
        "input_dtype": types.get(inp.type, str(inp.type)),
        "output_stride": op.stride if op else None,
        "heatmap_activation": None,
        "outputs": outputs,
        "edgetpu": flatbuf.EDGETPU_OP in flatbuf.custom_op_names(model_t),
        "decoder_op": None
        if op is None
        else {
            "max_detections": op.max_detections,
            "score_threshold": round(op.score_threshold, 4),
            "nms_radius": op.nms_radius,
            "stride": op.stride,
        },
        "metadata": flatbuf.read_metadata(buf, path.name),
        "runtime": f"not loaded: {reason}",
    }


def model_info(name_or_path: str, decode_config=None) -> dict:
    """What the runtime detects in a model: the loader's ``info()``, or the flatbuffer's if it cannot run here.

    ``decoder_settings`` are the settings ``run``/``serve`` use with this model and no flags
    (``decode_config``: a device config's ``[decode]`` section), each with where it came from.
    """
    import dataclasses

    from ..decoder_settings import model_settings, resolve_decoder_settings
    from ..errors import RuntimeMissingError
    from ..model import zoo

    # The runtime's own loader, so this is what `run` will see.
    from ..model.posenet import load_posenet

    path = zoo.resolve_model(name_or_path)
    try:
        model = load_posenet(path, threads=1)
        info = dataclasses.asdict(model.info())
        settings = resolve_decoder_settings(None, decode_config, *model_settings(model))
    except RuntimeMissingError as e:  # Edge TPU build without libedgetpu / a Coral device
        info = _static_info(path, e.problem)
        op = info["decoder_op"]
        from_op = (
            {}
            if not op
            else {
                "max_poses": op["max_detections"],
                "min_pose_score": op["score_threshold"],
                "nms_radius": op["nms_radius"],
            }
        )
        settings = resolve_decoder_settings(None, decode_config, from_op, "model: Coral decoder op")
    info["decoder_settings"] = settings.to_dict()
    entry = None if path.exists() and str(path) == str(name_or_path) else zoo.lookup(name_or_path)
    info["path"] = str(path)
    info["registry"] = None if entry is None else {"name": entry.name, "verified": entry.verified}
    return info


def cmd_info(args: argparse.Namespace) -> int:
    decode_config = None
    if args.config:
        from ..config import load_config

        decode_config = load_config(args.config).decode
    info = model_info(args.model, decode_config)
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    dec = info["decoder_op"]
    reg = info["registry"]
    rows = [
        ("path", info["path"]),
        (
            "registry",
            "-" if reg is None else f"{reg['name']} ({'sha256 verified' if reg['verified'] else 'unverified'})",
        ),
        ("runtime", info["runtime"]),
        ("input", f"{info['input_height']}x{info['input_width']} (HxW) {info['input_dtype']}"),
        ("output stride", info["output_stride"] if info["output_stride"] is not None else "?"),
        ("heatmaps", info["heatmap_activation"] or "?"),
        ("outputs", ", ".join(f"{k}={v}" for k, v in info["outputs"].items()) or "?"),
        (
            "decoder op",
            "none"
            if not dec
            else " ".join(f"{k}={v}" for k, v in dec.items())
            + " (Coral's PosenetDecoderOp, cut off: edgepose decodes in numpy)",
        ),
        (
            "decoder",
            ", ".join(
                f"{k} {v['value']:g} ({v['source']})"
                if isinstance(v["value"], float)
                else f"{k} {v['value']} ({v['source']})"
                for k, v in info["decoder_settings"].items()
            ),
        ),
        ("edge tpu", "yes" if info["edgetpu"] else "no"),
        ("metadata", "none" if not info["metadata"] else json.dumps(info["metadata"])),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    return 0
