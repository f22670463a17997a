"""``edgepose probe URI``: check that a camera, stream or file delivers frames, before ``serve`` depends on it.

Reads a few frames through the same readers the pipeline uses and prints what came out (size, rate,
dropped frames); ``--save`` keeps the last frame as an image to look at. Exit status 0 if frames
arrived, 2 with a one-line error (problem and fix) otherwise.
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "probe",
        help="read a few frames from a camera, stream or file and print their size and rate",
        description="Read a few frames from a source through the readers edgepose run and serve use, and "
        "print the frame size, the rate frames arrived at, dropped frames and the declared fps. "
        "Exit 0 if frames arrived, 2 with a one-line error otherwise.",
    )
    p.add_argument(
        "uri",
        metavar="URI",
        help="picamera2, 0, /dev/video0, rtsp://..., http://... (MJPEG), a video, an image, a folder or a glob",
    )
    p.add_argument("--frames", type=int, default=30, help="frames to read (default 30)")
    p.add_argument("--width", type=int, help="capture width to ask a camera for")
    p.add_argument("--height", type=int, help="capture height to ask a camera for")
    p.add_argument("--fps", type=float, help="capture rate to ask a camera for")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds without a frame before giving up (default 10)")
    p.add_argument("--save", metavar="IMAGE", help="write the last frame to this image file (.jpg, .png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..errors import EdgeposeError, SourceError
    from ..sources import open_source

    t0 = time.perf_counter()
    src = open_source(
        args.uri, width=args.width, height=args.height, fps=args.fps, timeout_s=args.timeout, reconnect=False
    )
    t_open = time.perf_counter() - t0
    n, last = 0, None
    with src:
        t1 = time.perf_counter()
        for frame in src:
            n += 1
            last = frame
            if n >= args.frames:
                break
        elapsed = time.perf_counter() - t1
        dropped = int(getattr(src, "dropped", 0))
    if last is None:
        raise SourceError(
            f"{src.description} delivered no frame.",
            "check that the file has frames, or that the camera or stream is sending (no other program holding the camera).",
        )
    rate = f"{n / elapsed:.1f} fps read" if elapsed > 0 else "instant"
    print(f"{src.description}: opened in {t_open:.2f} s")
    print(
        f"  {n} frame{'s' if n != 1 else ''} of {last.width}x{last.height}, {rate}, {dropped} dropped; "
        f"declared fps {src.fps if src.fps else 'unknown'}, live {src.is_live}, last timestamp {last.timestamp:.3f}"
    )
    if args.save:
        if not cv2.imwrite(args.save, last.image):
            raise EdgeposeError(f"could not write {args.save}.", "use a .jpg or .png path in an existing folder.")
        print(f"  last frame written to {args.save}")
    return 0
