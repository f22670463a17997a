"""``edgepose serve``: the long-running device service (capture -> inference -> tracking -> actions -> MQTT)."""
from __future__ import annotations

import argparse
import json
import logging
import signal
from typing import Any, Callable, Iterable

from ..errors import EdgeposeError

log = logging.getLogger("edgepose.serve")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the device service: publish poses, actions and status over MQTT",
        description="Run capture, inference, tracking and action recognition and publish to MQTT until stopped "
        "(SIGTERM: send pending events, announce offline). See docs/mqtt.md.",
    )
    p.add_argument("--config", "-c", help="device config (TOML); default: built-in defaults")
    p.add_argument("--replay", metavar="JSONL", help="publish a recording (frame records) instead of running the camera and model")
    p.add_argument("--replay-fps", type=float, default=None, help="frames per second of --replay (default: as fast as they are consumed)")
    p.add_argument("--replay-loop", action="store_true", help="repeat --replay forever")
    p.add_argument("--print-config", action="store_true", help="print the validated config (secrets redacted) and exit")
    p.set_defaults(func=run)


def frames_factory(args: argparse.Namespace, cfg: Any) -> Callable[[], Iterable]:
    if args.replay:
        from ..service.replay import replay

        return lambda: replay(args.replay, fps=args.replay_fps, loop=args.replay_loop)
    try:
        from ..pipeline import Pipeline
    except ImportError as e:  # pragma: no cover - the pipeline ships with edgepose
        raise EdgeposeError(f"the inference pipeline cannot be imported ({e}).", "reinstall edgepose, or use --replay.") from None
    return lambda: Pipeline(cfg)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..service.runner import Service
    from ..sinks.mqtt import MqttSink

    cfg = load_config(args.config)
    dump = cfg.model_dump(mode="json")
    dump["mqtt"] = cfg.mqtt.redacted()
    if args.print_config:
        print(json.dumps(dump, indent=2))
        return 0
    log.info("config: %s", json.dumps(dump))
    if not cfg.mqtt.enabled:
        log.info("[mqtt] enabled = false is ignored by edgepose serve, which always publishes")
    frames = frames_factory(args, cfg)
    sink = MqttSink(cfg.mqtt, cfg.device_id, model=cfg.model.path)
    service = Service(sink, frames, status_interval=cfg.mqtt.status_interval,
                      retry_min=cfg.mqtt.backoff_min, retry_max=cfg.mqtt.backoff_max)

    def _graceful(signum: int, _frame: Any) -> None:
        log.warning("received %s: stopping (sending pending events, announcing offline)", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    return service.run()
