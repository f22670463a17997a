"""``edgepose run``: poses from an image, a folder, a video, a camera or a stream.

The seed article's demo is ``edgepose run --source video.avi --output out.mp4``:
up to 10 poses a frame, skeletons drawn for pose and part scores of 0.25 or more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from ..config import load_config
from ..preprocess import FILTERS, RESIZE_MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a PoseNet over images, video, a camera or a stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        "-m",
        help="a .tflite path or a name from 'edgepose models list' (default: the config's, else the registry default)",
    )
    p.add_argument(
        "--source",
        "-s",
        help="image, folder of images, video file, camera index (0), picamera2, or an rtsp:// or http:// (MJPEG) URL",
    )
    p.add_argument("--config", "-c", help="device config (TOML); flags override it")
    p.add_argument("--output", "-o", help="annotated output: a video (.mp4/.avi), an image (.jpg/.png) or a folder")
    p.add_argument("--jsonl", help="write keypoints as JSON Lines to this file ('-' for stdout)")
    # Decoder flags default to unset: then the device config, else the model's own settings
    # (Coral's decoder op, edgepose metadata), else the built-in default decides.
    p.add_argument("--max-poses", type=int, help="most people per frame (default: the model's, else 10)")
    p.add_argument("--min-pose-score", type=float, help="drop poses scoring lower (default: the model's, else 0.25)")
    p.add_argument("--min-part-score", type=float, help="draw parts scoring at least this (default 0.25)")
    p.add_argument(
        "--nms-radius",
        type=float,
        help="radius in model-input pixels for duplicate parts (default: the model's, else 20)",
    )
    p.add_argument("--single", action="store_true", default=None, help="single-pose decoding (one person, fastest)")
    p.add_argument("--threads", type=int, help="interpreter threads (default 2)")
    p.add_argument("--resize", choices=RESIZE_MODES, help="fit frames to the model input by stretching or by padding")
    p.add_argument(
        "--resize-filter",
        choices=FILTERS,
        help="how frames shrink to the model input: antialias (default), linear (fastest, aliases), area, nearest",
    )
    p.add_argument("--no-track", action="store_true", help="do not track people across frames")
    p.add_argument(
        "--sequence",
        action="store_true",
        help="the images of a folder or glob are a sequence (time-lapse): track people across them (default: each photo stands alone)",
    )
    p.add_argument("--actions", action="store_true", help="recognise actions and print their events")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=main)


def _overrides(args: argparse.Namespace) -> dict:
    o: dict = {"model": {}, "source": {}, "tracking": {}, "actions": {}}
    if args.model:
        o["model"]["path"] = args.model
    if args.threads:
        o["model"]["threads"] = args.threads
    if args.resize:
        o["model"]["resize"] = args.resize
    if args.resize_filter:
        o["model"]["resize_filter"] = args.resize_filter
    if args.source is not None:
        o["source"]["uri"] = args.source
    if args.no_track:
        o["tracking"]["enabled"] = False
    if args.sequence:
        o["tracking"]["image_sequence"] = True
    o["actions"]["enabled"] = bool(args.actions)
    return o


def decode_flags(args: argparse.Namespace) -> dict:
    """Decoder settings given on the command line; ``None`` = not given (see edgepose.decoder_settings)."""
    flags = {key: getattr(args, key) for key in ("max_poses", "min_pose_score", "min_part_score", "nms_radius")}
    flags["mode"] = "single" if args.single else None
    from pydantic import ValidationError

    from ..config import DecodeConfig, format_validation_error
    from ..errors import ConfigError

    try:
        DecodeConfig.model_validate(flags)  # the same range checks as the config file
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "command line").replace("_", "-")) from None
    return flags


def main(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline
    from ..sinks.jsonl import JsonlSink
    from ..sources import open_source

    # Defaults < board profile < device config < flags (see edgepose.profiles).
    cfg = load_config(args.config, overrides=_overrides(args))
    if args.source is None and args.config is None:
        from ..errors import ConfigError

        raise ConfigError(
            "no --source given.", "pass --source with an image, a folder, a video, a camera index or an rtsp:// URL."
        )
    pipeline = Pipeline(cfg, decode_flags=decode_flags(args))
    jsonl = JsonlSink(args.jsonl) if args.jsonl else None
    writer = None
    from ..draw import ActionLabels

    action_labels = ActionLabels()  # ongoing actions are drawn on every frame until they end
    frames = people = 0
    max_people = 0
    stage: dict[str, list[float]] = {}
    show = not args.quiet
    events_out = sys.stderr if args.jsonl == "-" else sys.stdout
    t_start = time.perf_counter()
    skipped = 0
    try:
        # Files: the source's prefetch thread also pre-processes for the pipeline (one thread for both).
        with open_source(cfg.source) as src:
            bar = None
            if show:
                from ..progress import bar as progress_bar

                total = (
                    src.frame_count
                    if args.max_frames is None
                    else min(src.frame_count or args.max_frames, args.max_frames)
                )
                from ..redact import redact_url

                desc = (
                    Path(redact_url(str(cfg.source.uri))).name or "frames"
                )  # 'rtsp://u:pw@cam' has no path: its name is u:***@cam
                bar = progress_bar(total, desc, "frame", None if src.frame_count else False, leave=False)
            for res in pipeline.run(src, keep_image=bool(args.output), max_frames=args.max_frames):
                frames += 1
                people += len(res.poses)
                max_people = max(max_people, len(res.poses))
                for k, v in res.timings.items():
                    stage.setdefault(k, []).append(v)
                if jsonl:
                    jsonl.write(res)
                if args.actions:
                    for ev in res.events:
                        print(
                            f"[{res.timestamp:8.2f}s] person {ev.track_id}: {ev.action} {ev.kind}"
                            + (f" (count {ev.count})" if ev.count is not None else "")
                            + f" conf {ev.confidence:.2f}",
                            file=events_out,
                        )
                if args.output:
                    writer = _write_annotated(args.output, writer, res, pipeline.decoder, src.fps, action_labels)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            skipped = len(getattr(src, "skipped", None) or ())  # bad files of a folder: each warned, then counted here
    finally:
        if jsonl:
            jsonl.close()
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - t_start
    if show:
        _summary(frames, people, max_people, elapsed, stage, args, pipeline)
    if skipped:
        print(f"skipped {skipped} file(s) that could not be read (see the warnings above)", file=sys.stderr)
    return 0


def _write_annotated(path: str, writer, res, decoder, fps, action_labels):
    from ..draw import draw_poses
    from ..sinks.video import VideoSink

    if writer is None:
        writer = VideoSink(path, fps or 10.0, (res.width, res.height))
    labels = action_labels.update(res.events, res.timestamp)
    image = draw_poses(res.image, res.poses, decoder.min_pose_score, decoder.min_part_score, labels=labels)
    writer.write(image)
    return writer


def _summary(
    frames: int, people: int, max_people: int, elapsed: float, stage: dict[str, list[float]], args, pipeline
) -> None:
    if frames == 0:
        print("no frames were read from the source", file=sys.stderr)
        return
    per = ", ".join(f"{k} {1e3 * statistics.median(v):.1f}" for k, v in stage.items())
    lines = [
        f"{frames} frames in {elapsed:.1f} s ({frames / elapsed:.1f} FPS) with {pipeline.model.name} [{pipeline.model.runtime}]",
        f"people per frame: mean {people / frames:.2f}, max {max_people}",
        f"median ms per stage: {per}",
        f"decoder: {pipeline.decoder.describe()}",
    ]
    if args.output:
        lines.append(f"annotated output: {args.output}")
    if args.jsonl and args.jsonl != "-":
        lines.append(f"keypoints: {args.jsonl}")
    print("\n".join(lines), file=sys.stderr)
