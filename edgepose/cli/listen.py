"""``edgepose listen``: subscribe to a device's topics and print them, or record frames to JSON Lines.

Recordings are frame records (``FrameResult.to_dict()``, ``frame.schema.json``),
the format ``edgepose actions train`` and ``edgepose serve --replay`` read.
Events (published separately, QoS 1) are attached to the frame record they
happened in, or the next recorded one when ``poses`` are decimated; events
delivered twice (at-least-once) are dropped by their ``seq``.
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
from typing import IO, Any

log = logging.getLogger("edgepose.listen")

#: Seconds a recording waits after its last frame for that frame's events (separate topic, QoS 1).
EVENT_GRACE = 0.5


def register(sub: Any) -> None:
    p = sub.add_parser(
        "listen",
        help="subscribe to a device's MQTT topics; print them or record frames to JSONL",
        description="Subscribe to <prefix>/# of a device (or all devices with --device '+') and print each message "
        "as `topic json`, or record the poses and events to JSON Lines with --record.",
    )
    p.add_argument("--config", "-c", help="device config (TOML) whose [mqtt] section gives broker, TLS and credentials")
    p.add_argument("--host", help="broker host (overrides the config)")
    p.add_argument("--port", type=int, help="broker port (overrides the config)")
    p.add_argument("--device", help="device id to listen to ('+' for every device; default: the config's device_id)")
    p.add_argument("--username", help="broker user name (overrides the config)")
    p.add_argument("--password-env", help="environment variable holding the password")
    p.add_argument("--record", metavar="JSONL", help="append frame records to this file instead of printing")
    p.add_argument("--frames", type=int, default=None, help="stop after this many poses messages")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=run)


class Recorder:
    """Turns ``poses`` and ``events`` payloads into frame records.

    Events travel on their own topic (QoS 1) and can arrive a little after the
    poses of their frame, so the last :attr:`hold` frames stay in memory to
    receive them before they are written. An event goes to the record of its
    frame, or the next recorded one when poses are rate-limited.
    """

    def __init__(self, out: IO[str], hold: int = 30):
        self.out = out
        self.hold = hold
        self.buffer: list[dict[str, Any]] = []  # frame records not yet written, frames increasing
        self.early: list[dict[str, Any]] = []  # events for frames not received yet
        self.seen: set[tuple[str, int]] = set()
        self.written = 0

    @staticmethod
    def _attach(rec: dict[str, Any], event: dict[str, Any]) -> None:
        rec.setdefault("_events", []).append(event)

    def add_event(self, payload: dict[str, Any]) -> None:
        key = (payload.get("device", ""), int(payload["seq"]))
        if key in self.seen:
            return
        self.seen.add(key)
        f = payload.get("frame")
        target = next((r for r in self.buffer if f is None or r["frame"] >= f), None)
        if target is None:
            self.early.append(payload)
        else:
            self._attach(target, payload)  # its frame, the next recorded one, or (too late) the oldest held

    def add_poses(self, payload: dict[str, Any]) -> None:
        from ..sinks.payloads import frame_record

        rec = frame_record(payload)
        keep = []
        for e in self.early:
            if e.get("frame") is None or e["frame"] <= rec["frame"]:
                self._attach(rec, e)
            else:
                keep.append(e)
        self.early = keep
        self.buffer.append(rec)
        while len(self.buffer) > self.hold:
            self._write(self.buffer.pop(0))

    def _write(self, rec: dict[str, Any]) -> None:
        events = rec.pop("_events", [])
        if events:
            rec["events"] = [e["event"] for e in sorted(events, key=lambda e: e["seq"])]
        self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.out.flush()
        self.written += 1

    def close(self) -> None:
        if self.buffer and self.early:  # events of frames that never came: keep them with the last frame
            for e in self.early:
                self._attach(self.buffer[-1], e)
            self.early = []
        while self.buffer:
            self._write(self.buffer.pop(0))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..config import load_config
    from ..sinks.mqtt import connect_kwargs, explain_connect_failure, explain_refusal, new_client
    from ..sinks.payloads import decode_poses

    cfg = load_config(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("username", args.username),
                                   ("password_env", args.password_env)) if v is not None}
    mcfg = cfg.mqtt.model_copy(update=overrides)
    device = args.device or cfg.device_id
    prefix = mcfg.topic_prefix.replace("{device_id}", device).rstrip("/")
    client = new_client(mcfg, f"edgepose-listen-{device.replace('+', 'all')}-{int(time.time() * 1000) % 10**8}")
    client.reconnect_delay_set(mcfg.backoff_min, mcfg.backoff_max)  # type: ignore[arg-type]

    done = threading.Event()
    lock = threading.Lock()
    out_file = open(Path(args.record), "a", encoding="utf-8") if args.record else None
    recorder = Recorder(out_file) if out_file else None
    bar = tqdm(unit=" frames", desc=f"recording {args.record}", disable=None) if recorder else None
    poses_seen = 0
    closed = False

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            problem, fix = explain_refusal(reason, mcfg.host, mcfg.port, mcfg)
            log.error("%s Fix: %s Retrying with back-off.", problem, fix)
            return
        c.subscribe(f"{prefix}/#", qos=1)
        log.info("listening on %s:%d to %s/#", mcfg.host, mcfg.port, prefix)

    def on_connect_fail(c: Any, userdata: Any) -> None:
        problem, fix = explain_connect_failure(sys.exc_info()[1], mcfg.host, mcfg.port, mcfg.tls.enabled)
        log.error("%s Fix: %s Retrying with back-off.", problem, fix)

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        nonlocal poses_seen
        kind = msg.topic.rsplit("/", 1)[-1]
        dev = msg.topic[: -len(kind) - 1].rsplit("/", 1)[-1] if "+" in prefix else device
        try:
            data = decode_poses(msg.payload, dev) if kind == "poses" else (json.loads(msg.payload) if msg.payload else None)
        except ValueError as e:
            log.warning("undecodable message on %s: %s", msg.topic, e)
            return
        with lock:
            if closed or (done.is_set() and kind == "poses"):
                return
            if recorder is None:
                print(msg.topic, json.dumps(data, separators=(",", ":")), flush=True)
            elif kind == "events" and data:
                recorder.add_event(data)
            elif kind == "poses":
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
    client.connect_async(mcfg.host, mcfg.port, keepalive=mcfg.keepalive, **connect_kwargs(mcfg))
    client.loop_start()
    try:
        if done.wait(args.timeout) and recorder is not None:
            time.sleep(EVENT_GRACE)  # events of the last frame arrive just behind its poses
    except KeyboardInterrupt:
        pass
    finally:
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
                log.warning("recorded %d frame(s) to %s", recorder.written, args.record)
            if out_file is not None:
                out_file.close()
    return 0
