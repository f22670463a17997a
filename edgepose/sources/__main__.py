"""``python -m edgepose.sources URI``: check that a camera, stream or file delivers frames.

Reads a few frames through the same readers the pipeline uses and prints what
came out (size, rate, dropped frames); ``--save`` keeps the last frame as an
image to look at. Exit status 0 if frames arrived, 2 with a one-line error
(problem and fix) otherwise.
"""
from __future__ import annotations

import argparse
import sys
import time

import cv2

from ..errors import SourceError
from . import open_source


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgepose.sources", description=__doc__.split("\n\n")[0])
    ap.add_argument("uri", help="picamera2, 0, /dev/video0, rtsp://..., a video, an image, a folder or a glob")
    ap.add_argument("--frames", type=int, default=30, help="frames to read (default 30)")
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--fps", type=float)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds without a frame before giving up")
    ap.add_argument("--save", metavar="IMAGE", help="write the last frame to this image file")
    args = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        src = open_source(args.uri, width=args.width, height=args.height, fps=args.fps, timeout_s=args.timeout, reconnect=False)
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
    except SourceError as e:
        print(f"edgepose sources: error: {e}", file=sys.stderr)
        return e.exit_code
    if last is None:
        print(f"edgepose sources: error: {src.description} delivered no frame.", file=sys.stderr)
        return 2
    rate = f"{n / elapsed:.1f} fps read" if elapsed > 0 else "instant"
    print(f"{src.description}: opened in {t_open:.2f} s")
    print(f"  {n} frames of {last.width}x{last.height}, {rate}, {dropped} dropped; "
          f"declared fps {src.fps if src.fps else 'unknown'}, live {src.is_live}, last timestamp {last.timestamp:.3f}")
    if args.save:
        if not cv2.imwrite(args.save, last.image):
            print(f"edgepose sources: error: could not write {args.save}. Fix: use a .jpg or .png path in an existing folder.", file=sys.stderr)
            return 2
        print(f"  last frame written to {args.save}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
