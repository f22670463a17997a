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
    p.add_argument("--jsonl", metavar="FILE", help="append frame records to this file (as `edgepose run --jsonl`) instead of printing")
    p.add_argument("--record", dest="jsonl", help=argparse.SUPPRESS)  # its name before 0.1: kept for scripts
    p.add_argument("--frames", type=int, default=None, help="stop after this many poses messages")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up with an error when the broker is not reached within this time (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..mqtt.client import connect_kwargs, new_client
    from ..mqtt.diagnosis import explain_connect_failure, explain_refusal
    from ..mqtt.inbound import BadMessage, Rejects, parse, raw_topic
    from ..progress import bar as progress_bar
    from ..sinks.jsonl import JsonlSink
    from ..sinks.recorder import MAX_EARLY, MAX_EVENTS_PER_FRAME, MqttRecorder

    cfg = load_config(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("username", args.username),
                                   ("password_env", args.password_env)) if v is not None}
    mcfg = cfg.mqtt.model_copy(update=overrides)
    device = args.device or cfg.device_id
    prefix = mcfg.prefix(device)
    client = new_client(mcfg, f"edgepose-listen-{device.replace('+', 'all')}-{int(time.time() * 1000) % 10**8}")
    client.reconnect_delay_set(mcfg.backoff_min, mcfg.backoff_max)  # type: ignore[arg-type]

    done = threading.Event()
    connected = threading.Event()
    lock = threading.Lock()
    #: (problem, fix) of the last failed attempt: the error when no attempt ever succeeds.
    failure: list[tuple[str, str]] = []
    out_path = Path(args.jsonl) if args.jsonl else None
    existed = out_path is not None and out_path.exists()
    recorder = MqttRecorder(JsonlSink(out_path, append=True)) if out_path else None
    bar = progress_bar(None, f"recording {args.jsonl}", " frames") if recorder else None
    poses_seen = 0
    closed = False
    rejects = Rejects("edgepose listen")

    def report(problem: str, fix: str) -> None:
        failure[:] = [(problem, fix)]
        # Before the first connection the final error says it once; after, every drop is worth a line.
        log.log(logging.WARNING if connected.is_set() else logging.INFO, "%s Fix: %s Retrying with back-off.", problem, fix)

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            report(*explain_refusal(reason, mcfg.host, mcfg.port, mcfg))
            return
        connected.set()
        c.subscribe(f"{prefix}/#", qos=1)
        log.info("listening on %s:%d to %s/#", mcfg.host, mcfg.port, prefix)

    def on_connect_fail(c: Any, userdata: Any) -> None:
        report(*explain_connect_failure(sys.exc_info()[1], mcfg.host, mcfg.port, mcfg.tls.enabled))

    def reject(topic: str, reason: str) -> None:
        line = rejects.note(topic, reason)
        if line is not None:
            log.warning("%s", line)

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        # paho's network thread: whatever a message holds, it must not end here (recording would stop silently).
        try:
            topic = msg.topic  # paho decodes it as UTF-8 here
        except UnicodeDecodeError:
            reject(raw_topic(msg), "its topic is not UTF-8")
            return
        try:
            handle(topic, msg)
        except BadMessage as e:
            reject(topic, str(e))
        except Exception as e:  # a case the checks did not foresee: still one line, and the next message is read
            log.debug("message on %s", topic, exc_info=True)
            reject(topic, f"{type(e).__name__}: {str(e)[:100]}")

    def handle(topic: str, msg: Any) -> None:
        nonlocal poses_seen
        kind = topic.rsplit("/", 1)[-1]
        dev = topic[: -len(kind) - 1].rsplit("/", 1)[-1] if "+" in prefix else device
        data = parse(kind, msg.payload, dev)
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

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    client.on_message = on_message
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    start = time.monotonic()
    client.connect_async(mcfg.host, mcfg.port, keepalive=mcfg.keepalive, **connect_kwargs(mcfg))
    client.loop_start()
    try:
        first_wait = args.connect_timeout if args.timeout is None else min(args.connect_timeout, args.timeout)
        while not connected.is_set() and not done.is_set() and time.monotonic() - start < first_wait:
            connected.wait(0.05)
        if connected.is_set():
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
        client.disconnect()
        client.loop_stop()
        with lock:
            if recorder is not None:
                before = recorder.written
                recorder.close()
                if bar is not None:
                    bar.update(recorder.written - before)
                    bar.close()
    if not connected.is_set():
        if out_path is not None and not existed and out_path.exists() and out_path.stat().st_size == 0:
            out_path.unlink()  # nothing was recorded: leave no empty file behind
        problem, fix = failure[0] if failure else (
            f"MQTT broker {mcfg.host}:{mcfg.port} did not answer.", "check --host/--port (or mqtt.host/mqtt.port) and that the broker runs.")
        raise EdgeposeError(f"{problem.rstrip('.')}; not connected after {waited:.1f} s.", fix)
    if recorder is not None:
        print(f"edgepose listen: recorded {recorder.written} frame(s) to {args.jsonl}", file=sys.stderr)
    if recorder is not None and recorder.dropped_early:
        print(f"edgepose listen: dropped {recorder.dropped_early} event(s): over {MAX_EARLY} waiting for frames that never came, "
              f"or over {MAX_EVENTS_PER_FRAME} on one frame (their frame numbers do not match the poses).", file=sys.stderr)
    if rejects.total:
        print(f"edgepose listen: dropped {rejects.total} malformed message(s); the first: {rejects.first}", file=sys.stderr)
    return 0
