"""MQTT publishing benchmark against a local Mosquitto (started here, loopback only).

    python benchmarks/mqtt_bench.py [--messages 20000] [--frames 150] [--repeat 3]

Prints four tables:

1. bytes per ``poses`` message, JSON and binary, for 1 and 5 people (real poses of
   Coral's test image found by the real model; 5 = those plus shifted copies);
2. sustained publish rate (messages/s): bare paho-mqtt publishing ready-made bytes
   (the limit) beside edgepose's path (``MqttSink.publish_frame``: serialise +
   publish), both measured until a C subscriber (``mosquitto_sub -C N``) received
   the last message, and publisher-side only (the calls returned and the socket
   drained); ratio = edgepose / bare;
3. latency from frame capture to message received by a subscriber (in another
   process): the real pipeline on the shared clip paced at 30 FPS (capture time
   stamped when the frame is read), and the publish hop alone;
4. CPU share of the publishing path per frame (thread CPU time of
   ``publish_frame``) against a 30 FPS frame budget of 33.3 ms.

Targets (issue 5): edgepose path >= 0.7x bare paho; binary <= 1/3 of JSON bytes;
publishing <= 2 % of a frame's time at 30 FPS.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite"
IMAGE = SHARED / "images" / "test_couple.jpg"
VIDEO = SHARED / "video" / "openpose_video.avi"

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402

from edgepose.sinks import payloads  # noqa: E402
from edgepose.sinks.mqtt import MqttSink  # noqa: E402
from edgepose.sinks.mqtt_config import MqttConfig  # noqa: E402
from edgepose.types import FrameResult, Pose  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402

DEVICE = "bench"
TOPIC = f"edgepose/{DEVICE}/poses"


def real_people(n: int) -> list[Pose]:
    import cv2

    from edgepose.model.posenet import load_posenet

    found = load_posenet(MODEL).estimate(cv2.imread(str(IMAGE)), max_poses=5)
    out = []
    for i in range(n):
        b = found[i % len(found)]
        out.append(Pose(b.keypoints + 40.0 * (i // len(found)), b.scores, b.score, track_id=i + 1))
    return out


def frame_of(poses: list[Pose], i: int = 0) -> FrameResult:
    return FrameResult(index=i, timestamp=time.time(), poses=poses, width=1920, height=1278)


# -- rates ---------------------------------------------------------------------------
def start_counter(port: int, n: int) -> subprocess.Popen:
    """``mosquitto_sub`` exits after n messages; it is C, so it never is the bottleneck for Python publishers."""
    proc = subprocess.Popen([shutil.which("mosquitto_sub") or "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC,
                             "-C", str(n), "-q", "0"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)  # subscribed
    return proc


def bare_client(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare", protocol=MQTTProtocolVersion.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.2)
    return c


def wait_drained(client: mqtt.Client) -> None:
    while getattr(client, "_out_packet", None):
        time.sleep(0.0005)


def run_rate(port: int, n: int, publish_one, client: mqtt.Client) -> tuple[float, float, float]:
    """(publisher-side msgs/s, delivered msgs/s, calling thread's CPU microseconds per message) for n calls."""
    counter = start_counter(port, n)
    t0 = time.perf_counter()
    c0 = time.thread_time()
    for i in range(n):
        publish_one(i)
    cpu = (time.thread_time() - c0) / n * 1e6
    wait_drained(client)
    t_pub = time.perf_counter() - t0
    try:
        counter.wait(60)
    except subprocess.TimeoutExpired:
        counter.kill()
        return n / t_pub, float("nan"), cpu
    return n / t_pub, n / (time.perf_counter() - t0), cpu


def rates(port: int, poses: list[Pose], encoding: str, n: int, repeat: int, tmp: Path) -> dict[str, float]:
    fr = frame_of(poses)
    cfg = MqttConfig(host="127.0.0.1", port=port, encoding=encoding, outbox_path=str(tmp / f"o-{encoding}-{len(poses)}.sqlite"))
    sink = MqttSink(cfg, DEVICE).start()
    assert sink.wait_connected(10)
    sink.state_min_interval = 1e9  # the state summary is published once, not per frame
    data = sink.encode_poses(fr)
    bare = bare_client(port)
    # Many small messages can out-run paho's socket queue guard in the sink; lift it for the rate run.
    import edgepose.sinks.mqtt as m

    limit, m.MAX_QUEUED_POSES = m.MAX_QUEUED_POSES, 10**9
    best: dict[str, float] = {"bare_pub": 0, "bare_del": 0, "ep_pub": 0, "ep_del": 0, "bare_cpu": 1e9, "ep_cpu": 1e9}
    try:
        for _ in range(repeat):
            p, d, c = run_rate(port, n, lambda i: bare.publish(TOPIC, data, qos=0), bare)
            best["bare_pub"], best["bare_del"], best["bare_cpu"] = max(best["bare_pub"], p), max(best["bare_del"], d), min(best["bare_cpu"], c)
            p, d, c = run_rate(port, n, lambda i: sink.publish_frame(fr), sink._client)
            best["ep_pub"], best["ep_del"], best["ep_cpu"] = max(best["ep_pub"], p), max(best["ep_del"], d), min(best["ep_cpu"], c)
    finally:
        m.MAX_QUEUED_POSES = limit
        bare.disconnect()
        bare.loop_stop()
        sink.close(timeout=1)
    return best


# -- latency -------------------------------------------------------------------------
def _latency_subscriber(port: int, n: int, q: mp.Queue, ready: mp.Event) -> None:
    import json as _json

    lat: list[float] = []
    done = threading.Event()

    def on_message(c, u, msg):
        lat.append(time.time() - _json.loads(msg.payload)["ts"])
        if len(lat) >= n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="latency-sub", protocol=MQTTProtocolVersion.MQTTv5)
    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.connect("127.0.0.1", port)
    c.subscribe(TOPIC, qos=0)
    c.loop_start()
    done.wait(120)
    c.loop_stop()
    q.put(lat)


def latency_run(port: int, frames, n: int, tmp: Path, pace: float = 1 / 30) -> tuple[list[float], list[float], list[float]]:
    """Publish ``n`` results from ``frames()`` (an iterator of (capture_time, FrameResult)) at 30 FPS.

    Returns (capture->received latencies, publish->received latencies, publish_frame thread CPU seconds).
    """
    ctx = mp.get_context("spawn")
    q, ready = ctx.Queue(), ctx.Event()
    sub = ctx.Process(target=_latency_subscriber, args=(port, n, q, ready))
    sub.start()
    ready.wait(30)
    cfg = MqttConfig(host="127.0.0.1", port=port, outbox_path=str(tmp / "o-latency.sqlite"))
    sink = MqttSink(cfg, DEVICE).start()
    assert sink.wait_connected(10)
    publish_at: dict[int, float] = {}
    cpu: list[float] = []
    capture_ts: dict[int, float] = {}
    next_t = time.monotonic()
    for i, (t_cap, fr) in enumerate(frames()):
        if i >= n:
            break
        fr.index = i
        capture_ts[i] = t_cap
        fr.timestamp = t_cap  # the payload carries capture time; the subscriber subtracts it
        publish_at[i] = time.time()
        c0 = time.thread_time()
        sink.publish_frame(fr)
        cpu.append(time.thread_time() - c0)
        next_t += pace
        time.sleep(max(0.0, next_t - time.monotonic()))
    lat = q.get(timeout=120)
    sub.join(10)
    sink.close(timeout=1)
    hop = [lat_i - (publish_at[i] - capture_ts[i]) for i, lat_i in enumerate(lat)]
    return lat, hop, cpu


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--frames", type=int, default=150, help="frames of the latency runs (30 FPS)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="edgepose-mqtt-bench-"))
    crowd = {1: real_people(1), 5: real_people(5)}

    print("\n1. bytes per poses message")
    print(f"{'people':>6} {'JSON':>7} {'binary':>7} {'binary/JSON':>12}")
    for n, ps in crowd.items():
        js, bn = len(payloads.poses_json(frame_of(ps), DEVICE)), len(payloads.poses_binary(frame_of(ps)))
        print(f"{n:>6} {js:>7} {bn:>7} {bn / js:>12.3f}")

    with Mosquitto(tmp / "broker") as broker:
        print(f"\n2. sustained publish rate, {args.messages} QoS-0 messages, best of {args.repeat} (messages/s)")
        print("   delivered: until mosquitto_sub got the last one; calls: until the publish calls returned and the socket drained;")
        print("   CPU: the publishing thread's CPU time per message (robust on a busy machine); ratio = edgepose / bare paho")
        print(f"{'people':>6} {'enc':>6} | {'bare paho':>10} {'edgepose':>10} {'ratio':>6} | {'bare paho':>10} {'edgepose':>10} {'ratio':>6} |"
              f" {'bare':>6} {'edgepose':>8} {'ratio':>6}")
        print(f"{'':>6} {'':>6} | {'delivered':>10} {'delivered':>10} {'':>6} | {'calls':>10} {'calls':>10} {'':>6} |"
              f" {'CPU us':>6} {'CPU us':>8} {'':>6}")
        for n, ps in crowd.items():
            for enc in ("json", "binary"):
                r = rates(broker.port, ps, enc, args.messages, args.repeat, tmp)
                print(f"{n:>6} {enc:>6} | {r['bare_del']:>10.0f} {r['ep_del']:>10.0f} {r['ep_del'] / r['bare_del']:>6.2f} |"
                      f" {r['bare_pub']:>10.0f} {r['ep_pub']:>10.0f} {r['ep_pub'] / r['bare_pub']:>6.2f} |"
                      f" {r['bare_cpu']:>6.1f} {r['ep_cpu']:>8.1f} {r['bare_cpu'] / r['ep_cpu']:>6.2f}")

        print(f"\n3. latency, {args.frames} frames at 30 FPS (ms)   and   4. CPU of publish_frame per frame")
        print(f"{'run':<34} {'p50':>7} {'p95':>7} {'max':>7} | {'hop p50':>7} {'hop p95':>7} | {'CPU us':>7} {'of 33ms':>8}")

        def synthetic(ps):
            def gen():
                while True:
                    yield time.time(), frame_of(ps)
            return gen

        def pipeline_frames():
            import cv2

            from edgepose.config import EdgeposeConfig
            from edgepose.pipeline import Pipeline
            from edgepose.types import Frame

            cfg = EdgeposeConfig.model_validate({"model": {"path": str(MODEL)}})
            pipe = Pipeline(cfg)
            cap = cv2.VideoCapture(str(VIDEO))
            i = 0
            while True:
                ok, img = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                t_cap = time.time()
                yield t_cap, pipe.process(Frame(i, t_cap, img))
                i += 1

        runs = [("publish only, 1 person", synthetic(crowd[1])), ("publish only, 5 people", synthetic(crowd[5])),
                ("real pipeline on the clip (capture->)", pipeline_frames)]
        for name, gen in runs:
            lat, hop, cpu = latency_run(broker.port, gen, args.frames, tmp)
            ms = [x * 1e3 for x in lat]
            hop_ms = [x * 1e3 for x in hop]
            cpu_us = statistics.mean(cpu) * 1e6
            print(f"{name:<34} {pct(ms, 50):>7.2f} {pct(ms, 95):>7.2f} {max(ms):>7.2f} | {pct(hop_ms, 50):>7.2f} {pct(hop_ms, 95):>7.2f} |"
                  f" {cpu_us:>7.0f} {cpu_us / 33333:>7.2%}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
