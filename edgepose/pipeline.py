"""Frames in, :class:`FrameResult` out: pre-process, invoke, decode, track, recognise actions.

The pipeline is the one place that wires the parts together; the CLI's
``run``, the ``serve`` service and the benchmarks all consume it. For files,
reading and pre-processing the next frame run in a background thread while
the model runs (OpenCV and the TFLite interpreter release the GIL), so the
main thread is busy with ``invoke`` most of the time. Live sources are not
prefetched: their reader already keeps only the newest frame, and a queue
here would only add latency.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Iterator

from .config import EdgeposeConfig
from .decoder_settings import model_settings, resolve_decoder_settings
from .model.base import KeypointModel
from .sources import FrameSource, open_source
from .types import Frame, FrameResult

log = logging.getLogger(__name__)

_END = object()


def is_image_set(source: FrameSource) -> bool:
    """Whether ``source`` (or the source a reader wraps) is a list of image files."""
    from .sources.images import ImageSequenceSource

    for _ in range(4):
        if isinstance(source, ImageSequenceSource):
            return True
        inner = source.__dict__.get("source")
        if not isinstance(inner, FrameSource):
            return False
        source = inner
    return False


class Pipeline:
    """Runs one model over frames with the settings of one :class:`EdgeposeConfig`."""

    def __init__(self, config: EdgeposeConfig | None = None, *, model: KeypointModel | None = None, decode_flags: dict | None = None):
        """``decode_flags``: decoder settings given on the command line (they win over the config and the model)."""
        self.config = config = config or EdgeposeConfig()
        if model is None:
            from .model.registry import open_model

            m = config.model
            model = open_model(m.path, threads=m.threads, resize=m.resize, edgetpu=m.edgetpu, edgetpu_device=m.edgetpu_device,
                               resize_filter=m.resize_filter)
        if not isinstance(model, KeypointModel):
            from .errors import ModelError

            kind = getattr(model, "model_type", type(model).__name__)
            raise ModelError(
                f"model.path is a '{kind}' model, but the pipeline's main model must be a PoseNet keypoint model.",
                "put a relocalization model under [relocalization] model = ..., and a keypoint model in model.path.",
            )
        self.model = model
        # Flag > device config > the model's own settings > built-in defaults, key by key.
        self.decoder = resolve_decoder_settings(decode_flags, config.decode, *model_settings(model))
        log.info("decoder: %s", self.decoder.describe())
        self.tracker = None
        if config.tracking.enabled:
            from .tracking import Tracker

            self.tracker = Tracker(config.tracking)
        self.actions = None
        if config.actions.enabled:
            from .actions import ActionEngine

            self.actions = ActionEngine(config.actions)
        # The camera-relocalization model runs beside the keypoint model, every Nth frame.
        self.camera = None
        self._camera_pose: dict | None = None
        if config.relocalization.enabled:
            from .relocalization import CameraPoseEstimator

            r = config.relocalization
            self.camera = CameraPoseEstimator(r.model, r.threads, edgetpu_device=config.model.edgetpu_device)

    # ------------------------------------------------------------------ one frame
    def _finish(self, frame: Frame, tensor, transform, t_pre: float, keep_image: bool, sequence: bool = True) -> FrameResult:
        d = self.decoder
        t0 = time.perf_counter()
        self.model.invoke(tensor)
        t1 = time.perf_counter()
        heads = self.model.heads()
        poses = self.model.decode(heads, transform, d.max_poses, d.min_pose_score, d.nms_radius, d.mode)
        t2 = time.perf_counter()
        timings = {"pre": t_pre, "invoke": t1 - t0, "decode": t2 - t1}
        if self.tracker is not None and sequence:
            poses = self.tracker.update(poses, frame.timestamp)
            t3 = time.perf_counter()
            timings["track"] = t3 - t2
            t2 = t3
        events = []
        if self.actions is not None and sequence:
            events = self.actions.update(poses, frame.timestamp)
            timings["actions"] = time.perf_counter() - t2
        extra = {}
        if self.camera is not None and frame.index % self.config.relocalization.every_n_frames == 0:
            t3 = time.perf_counter()
            self._camera_pose = self.camera.estimate(frame.image).to_dict()
            timings["camera_pose"] = time.perf_counter() - t3
            extra["camera_pose"] = self._camera_pose
        return FrameResult(
            index=frame.index,
            timestamp=frame.timestamp,
            poses=poses,
            width=frame.width,
            height=frame.height,
            image=frame.image if keep_image else None,
            timings=timings,
            events=events,
            extra=extra,
        )

    def process(self, frame: Frame, keep_image: bool = False) -> FrameResult:
        """Run every stage on one frame."""
        t = time.perf_counter()
        tensor, transform = self.model.preprocess(frame.image)
        return self._finish(frame, tensor, transform, time.perf_counter() - t, keep_image)

    # ------------------------------------------------------------------ streams
    def run(self, source: FrameSource, keep_image: bool = False, max_frames: int | None = None) -> Iterator[FrameResult]:
        """Results for every frame of ``source`` (it is not closed here).

        When a file or image set ends, actions still open (a posture, waving)
        are ended and their ``end`` events ride on the last frame's result; so
        results of files are handed out one frame late.
        """
        live = source.is_live
        # Photos of a folder are unrelated unless the config says they are a sequence: no track
        # IDs, smoothing or actions carried from one to the next.
        sequence = self.config.tracking.image_sequence or not is_image_set(source)
        frames = self._inline(source) if live else self._prepared(source)
        n = 0
        pending: FrameResult | None = None
        try:
            for frame, tensor, transform, t_pre in frames:
                res = self._finish(frame, tensor, transform, t_pre, keep_image, sequence)
                n += 1
                if live:
                    yield res
                else:
                    if pending is not None:
                        yield pending
                    pending = res
                if max_frames is not None and n >= max_frames:
                    break
            if pending is not None:
                pending.events.extend(self.finish())
                yield pending
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()

    def finish(self) -> list:
        """End every open action (the source ended or the service stops); returns their events."""
        return self.actions.close() if self.actions is not None else []

    def stream(self, keep_image: bool = False, max_frames: int | None = None, **source_kw: Any) -> Iterator[FrameResult]:
        """Open the configured source and run over it."""
        source_kw.setdefault("prefetch", 0)  # run() prefetches files itself
        with open_source(self.config.source, **source_kw) as src:
            yield from self.run(src, keep_image=keep_image, max_frames=max_frames)

    def _inline(self, source: FrameSource):
        for frame in source:
            t = time.perf_counter()
            tensor, transform = self.model.preprocess(frame.image)
            yield frame, tensor, transform, time.perf_counter() - t

    def _prepared(self, source: FrameSource, depth: int = 2):
        """Read and pre-process ahead in a thread; errors are re-raised here."""
        q: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()

        def work() -> None:
            try:
                for frame in source:
                    t = time.perf_counter()
                    tensor, transform = self.model.preprocess(frame.image)
                    item = (frame, tensor, transform, time.perf_counter() - t)
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(_END)
            except BaseException as e:  # handed to the consumer
                q.put(e)

        thread = threading.Thread(target=work, name="edgepose-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=2.0)
