"""``edgepose serve``: the long-running device service (capture -> inference -> tracking -> actions -> MQTT)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import SourceError

log = logging.getLogger("edgepose.serve")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the device service: publish poses, actions and status over MQTT",
        description="Run capture, inference, tracking and action recognition and publish to MQTT until stopped "
        "(SIGTERM: send pending events, announce offline). See edgepose/service/README.md.",
    )
    p.add_argument("--config", "-c", help="device config (TOML); default: built-in defaults")
    p.add_argument(
        "--replay", metavar="JSONL", help="publish a recording (frame records) instead of running the camera and model"
    )
    p.add_argument(
        "--replay-fps",
        type=_bounded(0.01, 1000.0),
        default=None,
        help="frames per second of --replay (default: as fast as they are consumed)",
    )
    p.add_argument("--replay-loop", action="store_true", help="repeat --replay forever")
    p.add_argument("--max-frames", type=int, default=None, help="stop (gracefully) after this many frames")
    p.add_argument("--print-config", action="store_true", help="print the validated config (secrets redacted) and exit")
    p.add_argument(
        "--status-every",
        type=_bounded(1.0, 86400.0, zero=True),
        default=30.0,
        metavar="SECONDS",
        help="print a status line (frames, fps, camera, MQTT, outbox) to stderr this often; 0: never (default: 30)",
    )
    p.set_defaults(func=run)


def _bounded(lo: float, hi: float, zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in [lo, hi] (or 0 when ``zero``); nan, inf and 1e-9 are refused in one line."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo <= v <= hi or (zero and v == 0)):
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}" + (" (or 0)" if zero else ""))
        return v

    return parse


class FatalSourceError(SourceError):
    """A source that retrying will not fix (a file, a recording): the service stops with a non-zero exit."""

    fatal = True


def frames_factory(
    args: argparse.Namespace, cfg: Any, service_ref: list, keep_image: bool = False
) -> tuple[Callable[[], Iterable], Any]:
    """A function returning a fresh frame iterable (called again after a source error), and the pipeline (None for a replay).

    ``keep_image``: results carry the camera image (for the web page's stream).
    """
    if args.replay:
        from ..service.replay import replay

        def replayed() -> Iterator:
            try:
                yield from replay(args.replay, fps=args.replay_fps, loop=args.replay_loop)
            except SourceError as e:
                raise FatalSourceError(e.problem, e.fix) from None  # a bad recording stays bad: no retry

        return replayed, None
    from ..pipeline import Pipeline
    from ..sources import open_source

    pipeline = Pipeline(cfg)  # loads the model once: a bad model is fatal at start, not retried

    def frames() -> Iterator:
        service = service_ref[0]
        # retry_first_open: a camera plugged in after boot is picked up; its state goes to the status topic.
        try:
            src = open_source(cfg.source, on_state=service.source_state_changed, retry_first_open=True)
        except SourceError as e:
            # Live sources retry inside (retry_first_open); what fails here is a file, or reconnect = false.
            raise FatalSourceError(e.problem, e.fix) from None
        service.source = src
        try:
            yield from pipeline.run(src, keep_image=keep_image)
        except SourceError as e:
            if src.is_live:
                raise  # the service reports the camera unavailable and opens it again
            raise FatalSourceError(e.problem, e.fix) from None
        finally:
            src.close()

    return frames, pipeline


def _print_line(text: str) -> None:
    # Plain lines on stderr (the journal keeps them) at any -v level: neither warnings nor debug output.
    print(f"edgepose serve: {text}", file=sys.stderr, flush=True)


def start_summary(cfg: Any, args: argparse.Namespace, sink: Any, pipeline: Any = None, page: str | None = None) -> str:
    """One line: model, source, broker and topics, the page's address, and the decoder settings in force with where each came from."""
    m = cfg.mqtt
    model = f"replay of {Path(args.replay).name}" if args.replay else Path(cfg.model.path).name
    from ..redact import redact_url

    source = args.replay if args.replay else redact_url(str(cfg.source.uri))  # no stream password in the journal
    broker = f"{m.host}:{m.port} (MQTT {m.protocol}{', TLS' if m.tls.enabled else ''}{f', user {m.username}' if m.username else ''})"
    return (
        f"started: model {model}, source {source}, broker {broker}, topics {m.prefix(cfg.device_id)}/"
        f"{{poses,events,status,state}}, outbox {sink.outbox.path}"
        + (f", page {page}" if page else "")
        + (f"; decoder: {pipeline.decoder.describe()}" if pipeline is not None else "")
    )


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..mqtt.sink import MqttSink
    from ..service.runner import Service

    # Defaults < board profile (EDGEPOSE_BOARD or board.toml beside the config) < device config.
    cfg = load_config(args.config)
    dump = cfg.redacted()  # no broker password, no stream password (rtsp://user:***@host)
    if args.print_config:
        print(json.dumps(dump, indent=2))
        return 0
    log.info("config: %s", json.dumps(dump))
    if not cfg.mqtt.enabled:
        log.info("[mqtt] enabled = false is ignored by edgepose serve, which always publishes")
    web = None
    if cfg.http.enabled:
        from ..web.device import DeviceWeb

        web = DeviceWeb(cfg.http, cfg.device_id)  # binding and credentials checked before the model loads
    service_ref: list = []
    frames, pipeline = frames_factory(args, cfg, service_ref, keep_image=web is not None and web.keep_image)
    sink = MqttSink(
        cfg.mqtt,
        cfg.device_id,
        model=Path(cfg.model.path).stem if not args.replay else f"replay of {Path(args.replay).name}",
    )
    service = Service(
        sink,
        frames,
        status_interval=cfg.mqtt.status_interval,
        retry_min=cfg.source.retry_initial_s,
        retry_max=cfg.source.retry_max_s,
        max_frames=args.max_frames,
        finish=None if pipeline is None else pipeline.finish,
        status_line=_print_line,
        status_line_interval=args.status_every,
    )
    page = None if web is None else web.url + (" (credentials required)" if web.server.auth.required else "")
    _print_line(start_summary(cfg, args, sink, pipeline, page))
    service_ref.append(service)

    def _graceful(signum: int, _frame: Any) -> None:
        log.warning("received %s: stopping (sending pending events, announcing offline)", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    if web is not None:
        web.model, web.sink, web.status = sink.model, sink, service.status_fields
        service.observers.append(web)
        web.start()
    try:
        code = service.run()
    finally:
        if web is not None:
            web.close()
    if service.fatal is not None:
        # The CLI's one-line error (the service itself logs it only at -v).
        print(f"edgepose serve: error: {service.fatal}", file=sys.stderr)
    return code
