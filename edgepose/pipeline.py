"""Frames in, :class:`FrameResult` out: pre-process, invoke, decode, track, recognise actions.

The pipeline is the one place that wires the parts together; the CLI's
``run``, the ``serve`` service and the benchmarks all consume it. For files,
reading and pre-processing run ahead in one thread (the source's
:class:`~edgepose.sources.PrefetchReader`) and ``invoke`` in another, while the
caller's thread decodes, tracks and handles each result (OpenCV and the TFLite
interpreter release the GIL), so everything else overlaps ``invoke``. Live
sources are not prefetched: their reader already keeps only the newest frame,
and a queue here would only add latency.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from .config import EdgeposeConfig
from .decoder_settings import model_settings, resolve_decoder_settings
from .model.base import KeypointModel
from .sources import FrameSource, PrefetchReader, open_source
from .types import Frame, FrameResult

log = logging.getLogger(__name__)

_END = object()


class Pipeline:
    """Runs one model over frames with the settings of one :class:`EdgeposeConfig`."""

    def __init__(
        self,
        config: EdgeposeConfig | None = None,
        *,
        model: KeypointModel | None = None,
        decode_flags: dict | None = None,
    ):
        """``decode_flags``: decoder settings given on the command line (they win over the config and the model)."""
        self.config = config = config or EdgeposeConfig()
        if model is None:
            from .model.registry import open_model
            from .model.runtime import configured_delegate

            m = config.model
            model = open_model(
                m.path,
                threads=m.threads,
                resize=m.resize,
                edgetpu=m.edgetpu,
                edgetpu_device=m.edgetpu_device,
                delegate=configured_delegate(m),
                resize_filter=m.resize_filter,
                decoder=m.decoder,
            )
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
    def _infer(self, tensor) -> tuple[Any, dict[str, float]]:
        """Invoke and read the outputs (before the next invoke overwrites them)."""
        t0 = time.perf_counter()
        self.model.invoke(tensor)
        t1 = time.perf_counter()
        heads = self.model.heads()
        return heads, {"invoke": t1 - t0, "heads": time.perf_counter() - t1}

    def _post(
        self, frame: Frame, heads, transform, timings: dict[str, float], keep_image: bool, sequence: bool
    ) -> FrameResult:
        """Decode, track, recognise actions: everything after the model's outputs are read."""
        d = self.decoder
        t1 = time.perf_counter()
        poses = self.model.decode(heads, transform, d.max_poses, d.min_pose_score, d.nms_radius, d.mode)
        t2 = time.perf_counter()
        timings["decode"] = timings.pop("heads", 0.0) + t2 - t1  # dequantizing the outputs counts as decoding
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

    def _finish(
        self, frame: Frame, tensor, transform, t_pre: float, keep_image: bool, sequence: bool = True
    ) -> FrameResult:
        heads, timings = self._infer(tensor)
        return self._post(frame, heads, transform, {"pre": t_pre, **timings}, keep_image, sequence)

    def process(self, frame: Frame, keep_image: bool = False) -> FrameResult:
        """Run every stage on one frame."""
        t = time.perf_counter()
        tensor, transform = self.model.preprocess(frame.image)
        return self._finish(frame, tensor, transform, time.perf_counter() - t, keep_image)

    # ------------------------------------------------------------------ streams
    def run(
        self, source: FrameSource, keep_image: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameResult]:
        """Results for every frame of ``source`` (it is not closed here).

        Files and image sets run in three overlapping stages: one thread reads and
        pre-processes ahead (the source's :class:`PrefetchReader`, the only one), one
        invokes the model, and the caller's thread decodes, tracks and consumes the
        result (drawing, writing, publishing) while the next frame is being invoked.
        Live sources run every stage in the caller's thread on the newest frame.

        When a file or image set ends, actions still open (a posture, waving)
        are ended and their ``end`` events ride on the last frame's result; so
        results of files are handed out one frame late.
        """
        live = source.is_live
        # Photos of a folder are unrelated unless the config says they are a sequence: no track
        # IDs, smoothing or actions carried from one to the next.
        sequence = self.config.tracking.image_sequence or not source.is_image_set
        stages: Generator[FrameResult, None, None] = (
            (self._finish(f, tensor, tr, t_pre, keep_image, sequence) for f, tensor, tr, t_pre in self._inline(source))
            if live
            else self._decoded(source, keep_image, sequence)
        )
        n = 0
        pending: FrameResult | None = None
        try:
            for res in stages:
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
            stages.close()

    def finish(self) -> list:
        """End every open action (the source ended or the service stops); returns their events."""
        return self.actions.close() if self.actions is not None else []

    def stream(
        self, keep_image: bool = False, max_frames: int | None = None, **source_kw: Any
    ) -> Iterator[FrameResult]:
        """Open the configured source and run over it."""
        with open_source(self.config.source, **source_kw) as src:
            yield from self.run(src, keep_image=keep_image, max_frames=max_frames)

    def _decoded(self, source: FrameSource, keep_image: bool, sequence: bool) -> Generator[FrameResult, None, None]:
        inferred = self._inferred(source)
        try:
            for frame, heads, transform, timings in inferred:
                yield self._post(frame, heads, transform, timings, keep_image, sequence)
        finally:
            inferred.close()  # stops the inference thread before the caller goes on

    def _inline(self, source: FrameSource) -> Generator[tuple[Frame, Any, Any, float], None, None]:
        for frame in source:
            t = time.perf_counter()
            tensor, transform = self.model.preprocess(frame.image)
            yield frame, tensor, transform, time.perf_counter() - t

    def _inferred(
        self, source: FrameSource, depth: int = 2
    ) -> Generator[tuple[Frame, Any, Any, dict[str, float]], None, None]:
        """``(frame, heads, transform, timings)``: read and pre-processed by the prefetch thread, invoked by
        an inference thread, so the caller's work on one frame overlaps the next one's ``invoke``."""
        if isinstance(source, PrefetchReader):  # opened with prefetch: its thread pre-processes too
            reader, own = source, False
            reader.set_prepare(self.model.preprocess)
        else:
            reader, own = PrefetchReader(source, depth, prepare=self.model.preprocess, close_source=False), True
        q: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                while not stop.is_set():
                    got = reader.read_prepared()
                    if got is None:
                        put(_END)
                        return
                    frame, prepared, timings = got
                    if prepared is None:  # read before the pipeline attached its pre-processing
                        t = time.perf_counter()
                        prepared = self.model.preprocess(frame.image)
                        timings["pre"] = time.perf_counter() - t
                    tensor, transform = prepared
                    heads, t_inf = self._infer(tensor)
                    if not put((frame, heads, transform, {**timings, **t_inf})):
                        return
            except BaseException as e:  # handed to the consumer
                put(e)

        thread = threading.Thread(target=work, name="edgepose-infer", daemon=True)
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
            if own:
                reader.close()
            # The interpreter is not shared: wait until the inference thread is out of invoke.
            thread.join(timeout=30.0)
