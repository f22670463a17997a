"""``edgepose listen``: subscribe to a device's topics and print them, or record frames to JSON Lines.

Recordings are frame records (``FrameResult.to_dict()``, ``frame.schema.json``),
the format ``edgepose actions train`` and ``edgepose serve --replay`` read.
Events (published separately, QoS 1) are attached to the frame record they
happened in, or the next recorded one when ``poses`` are decimated; events
delivered twice (at-least-once) are dropped by their ``seq``. Every message is
checked first (:mod:`edgepose.mqtt.inbound`): a malformed one is dropped with
one line per problem and counted at the end, and recording goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import EdgeposeError

log = logging.getLogger("edgepose.listen")

#: Seconds a recording waits after its last frame for that frame's events (separate topic, QoS 1).
EVENT_GRACE = 0.5


def register(sub: Any) -> None:
    p = sub.add_parser(
        "listen",
        help="subscribe to a device's MQTT topics; print them or record frames to JSONL",
        description="Subscribe to <prefix>/# of a device (or all devices with --device '+') and print each message "
        "as `topic json`, or record the poses and events to JSON Lines with --jsonl.",
    )
    p.add_argument("--config", "-c", help="device config (TOML) whose [mqtt] section gives broker, TLS and credentials")
    p.add_argument("--host", help="broker host (overrides the config)")
    p.add_argument("--port", type=int, help="broker port (overrides the config)")
    p.add_argument("--device", help="device id to listen to ('+' for every device; default: the config's device_id)")
    p.add_argument("--username", help="broker user name (overrides the config)")
    p.add_argument("--password-env", help="environment variable holding the password")
    p.add_argument(
        "--jsonl",
        metavar="FILE",
        help="append frame records to this file (as `edgepose run --jsonl`) instead of printing",
    )
    p.add_argument("--record", dest="jsonl", help=argparse.SUPPRESS)  # its name before 0.1: kept for scripts
    p.add_argument("--frames", type=int, default=None, help="stop after this many poses messages")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up with an error when the broker is not reached within this time (default 10)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..mqtt.inbound import parse, subscription
    from ..mqtt.subscriber import Subscriber
    from ..progress import bar as progress_bar
    from ..sinks.jsonl import JsonlSink
    from ..sinks.recorder import MAX_EARLY, MAX_EVENTS_PER_FRAME, MqttRecorder

    cfg = load_config(args.config)
    overrides = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("username", args.username),
            ("password_env", args.password_env),
        )
        if v is not None
    }
    mcfg = cfg.mqtt.model_copy(update=overrides)
    device = args.device or cfg.device_id
    prefix = mcfg.prefix(device)
    # Every device: the config's prefix names where the device id stands; one device: its own prefix.
    topic_filter, pattern = subscription(mcfg.topic_prefix) if device == "+" else (f"{prefix}/#", None)

    done = threading.Event()
    lock = threading.Lock()
    ever_connected = False
    out_path = Path(args.jsonl) if args.jsonl else None
    existed = out_path is not None and out_path.exists()
    recorder = MqttRecorder(JsonlSink(out_path, append=True)) if out_path else None
    bar = progress_bar(None, f"recording {args.jsonl}", " frames") if recorder else None
    poses_seen = 0
    closed = False

    def report(problem: str, fix: str) -> None:
        # Before the first connection the final error says it once; after, every drop is worth a line.
        log.log(logging.WARNING if ever_connected else logging.INFO, "%s Fix: %s Retrying with back-off.", problem, fix)

    def handle(topic: str, payload: bytes) -> None:
        nonlocal poses_seen
        if pattern is None:
            dev, kind = device, topic[len(prefix) + 1 :]
        else:
            m = pattern.match(topic)
            if m is None:
                return
            dev, kind = m["device"], m["kind"]
        data = parse(kind, payload, dev)
        with lock:
            if closed or (done.is_set() and kind == "poses"):
                return
            if recorder is None:
                print(topic, json.dumps(data, separators=(",", ":")), flush=True)
            elif kind == "events" and data:
                recorder.add_event(data)
            elif kind == "poses" and isinstance(data, dict):
                before = recorder.written
                recorder.add_poses(data)
                if bar is not None:
                    bar.update(recorder.written - before)
            if kind == "poses":
                poses_seen += 1
                if args.frames is not None and poses_seen >= args.frames:
                    done.set()

    sub = Subscriber(
        mcfg,
        f"edgepose-listen-{device.replace('+', 'all')}-{int(time.time() * 1000) % 10**8}",
        topic_filter,
        handle,
        who="edgepose listen",
        report=report,
    )
    connected, rejects = sub.connected, sub.rejects
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    start = time.monotonic()
    sub.start()
    try:
        first_wait = args.connect_timeout if args.timeout is None else min(args.connect_timeout, args.timeout)
        while not connected.is_set() and not done.is_set() and time.monotonic() - start < first_wait:
            connected.wait(0.05)
        ever_connected = connected.is_set()
        if ever_connected:
            left = None if args.timeout is None else max(0.0, args.timeout - (time.monotonic() - start))
            if done.wait(left) and recorder is not None:
                time.sleep(EVENT_GRACE)  # events of the last frame arrive just behind its poses
    except KeyboardInterrupt:
        pass
    finally:
        waited = time.monotonic() - start
        done.set()
        with lock:
            closed = True
        sub.stop()
        with lock:
            if recorder is not None:
                before = recorder.written
                recorder.close()
                if bar is not None:
                    bar.update(recorder.written - before)
                    bar.close()
    if not ever_connected:
        if out_path is not None and not existed and out_path.exists() and out_path.stat().st_size == 0:
            out_path.unlink()  # nothing was recorded: leave no empty file behind
        problem, fix = sub.failure or (
            f"MQTT broker {mcfg.host}:{mcfg.port} did not answer.",
            "check --host/--port (or mqtt.host/mqtt.port) and that the broker runs.",
        )
        raise EdgeposeError(f"{problem.rstrip('.')}; not connected after {waited:.1f} s.", fix)
    if recorder is not None:
        print(f"edgepose listen: recorded {recorder.written} frame(s) to {args.jsonl}", file=sys.stderr)
    if recorder is not None and recorder.dropped_early:
        print(
            f"edgepose listen: dropped {recorder.dropped_early} event(s): over {MAX_EARLY} waiting for frames that never came, "
            f"or over {MAX_EVENTS_PER_FRAME} on one frame (their frame numbers do not match the poses).",
            file=sys.stderr,
        )
    if rejects.total:
        print(
            f"edgepose listen: dropped {rejects.total} malformed message(s); the first: {rejects.first}",
            file=sys.stderr,
        )
    return 0
