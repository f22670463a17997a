"""Web pages benchmark: what the device page costs the frame loop, and `edgepose view` at fleet scale.

    python benchmarks/web_bench.py [--devices 50] [--fps 15] [--seconds 30] [--skip-loop] [--skip-fleet]

1. Frame loop of `edgepose serve` (the real model on the shared clip) with no web
   server, with the web page and nobody watching, and with two MJPEG viewers
   (two `curl` processes reading /stream.mjpg at the configured rate cap). Modes
   alternate in blocks, round-robin, in one process: the ratios to the no-web
   baseline survive a busy machine. Targets: no viewer costs nothing; two viewers
   cost <= 5 % of frame time.
2. Fleet scale: one Mosquitto on loopback; N simulated devices (the real
   `MqttSink`: outbox, QoS 1 events, status, poses) replaying a recording of the
   shared clip at F FPS each, in one simulator process; `edgepose view` with a
   headless Chromium on its page, and `edgepose listen --device + --jsonl`.
   Reports messages per second, CPU of every process, whether view and listen kept
   up (poses received / published), QoS 1 events lost, and the latency from
   publish to the browser (p50 / p99, measured in the page).

Everything runs on this machine; the table says how loaded it was.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.baselines.tables import table  # noqa: E402
from tests.conftest import SHARED  # noqa: E402 - the one definition of ../shared
from tests.procs import EDGEPOSE  # noqa: E402

MODEL = SHARED / "models" / "coral" / "posenet_mobilenet_v1_075_353_481_quant.tflite"
VIDEO = SHARED / "video" / "openpose_video.avi"
CLK = os.sysconf("SC_CLK_TCK")


# -- process CPU from /proc ------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[1]), (int(parts[11]) + int(parts[12])) / CLK


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants (Chromium's renderer and GPU processes)."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = _stat(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in procs:
            total += procs[p][1]
        todo += [c for c, (pp, _) in procs.items() if pp == p]
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, for the machine's load over an interval."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


# -- 1. frame loop ---------------------------------------------------------------------------
def frame_loop(block: int, rounds: int) -> list[tuple[str, float, float, float, float, str]]:
    """Per mode: (name, wall ms/frame, ratio, CPU ms/frame, ratio, note); medians over blocks, modes round-robin."""
    from edgepose.config import load_config
    from edgepose.pipeline import Pipeline
    from edgepose.web.config import HttpConfig
    from edgepose.web.device import DeviceWeb
    from tests.mosquitto import free_port

    cfg = load_config(overrides={"model": {"path": str(MODEL)}, "source": {"uri": str(VIDEO), "loop": True}})
    pipe = Pipeline(cfg)
    http = HttpConfig(enabled=True, port=free_port())
    web = DeviceWeb(http, "bench", model=MODEL.stem).start()
    stream = pipe.stream(keep_image=True)
    url = web.url + "stream.mjpg"
    modes = ("no web server", "web page, 0 viewers", "web page, 2 viewers")
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    observe: list[float] = []  # seconds inside on_frame, 0-viewer blocks
    encoded = [0.0, 0.0]  # JPEGs, seconds with viewers
    for _ in range(5):  # warm-up
        web.on_frame(next(stream))
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            viewers = []
            if mode.endswith("2 viewers"):
                viewers = [subprocess.Popen(["curl", "-s", "-N", "-o", "/dev/null", url]) for _ in range(2)]
                while web._viewers < 2:
                    web.on_frame(next(stream))
                n0, t0 = web.metrics.encoded._value.get(), time.perf_counter()
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(block):
                res = next(stream)
                if mode != "no web server":
                    o0 = time.thread_time()
                    web.on_frame(res)
                    if not viewers:
                        observe.append(time.thread_time() - o0)
            wall[mode].append((time.perf_counter() - w0) / block)
            cpu[mode].append((time.process_time() - c0) / block)
            if viewers:
                encoded[0] += web.metrics.encoded._value.get() - n0
                encoded[1] += time.perf_counter() - t0
                for v in viewers:
                    v.terminate()
                    v.wait()
                while web._viewers:  # a viewer's thread notices the closed socket at its next write
                    web.on_frame(next(stream))
    stream.close()
    web.close()
    med = {m: (statistics.median(wall[m]), statistics.median(cpu[m])) for m in modes}
    bw, bc = med[modes[0]]
    rows = []
    for m in modes:
        note = ""
        if m.endswith("0 viewers"):
            note = f"on_frame {statistics.mean(observe) * 1e6:.0f} us CPU per frame"
        elif m.endswith("2 viewers"):
            h = web.metrics.encode_ms
            per_jpeg = h._sum.get() / max(sum(b.get() for b in h._buckets), 1)
            note = (
                f"{encoded[0] / encoded[1]:.1f} JPEG/s encoded (cap {http.stream_fps:g}), {http.stream_width} px, q{http.jpeg_quality}, "
                f"{per_jpeg:.1f} ms CPU each (encoder thread)"
            )
        rows.append((m, med[m][0] * 1e3, med[m][0] / bw, med[m][1] * 1e3, med[m][1] / bc, note))
    return rows


# -- 2. fleet --------------------------------------------------------------------------------
def make_recording(path: Path, frames: int) -> Path:
    from edgepose.config import load_config
    from edgepose.pipeline import Pipeline

    cfg = load_config(overrides={"model": {"path": str(MODEL)}, "source": {"uri": str(VIDEO)}})
    with path.open("w") as f:
        for res in Pipeline(cfg).stream(max_frames=frames):
            f.write(json.dumps(res.to_dict()) + "\n")
    return path


def simulate(args: argparse.Namespace) -> None:
    """The simulator process: N devices (MqttSink each) replaying one recording at F FPS, staggered; prints a JSON summary."""
    import heapq

    from edgepose.mqtt.config import MqttConfig
    from edgepose.mqtt.sink import MqttSink
    from edgepose.service.replay import read_records
    from edgepose.types import FrameResult

    records = read_records(args.recording)
    tmp = Path(args.workdir)
    sinks = []
    for i in range(args.devices):
        cfg = MqttConfig(
            host="127.0.0.1",
            port=args.port,
            outbox_path=str(tmp / f"outbox-{i}.sqlite"),
            status_interval=5.0,
            backoff_min=0.2,
            backoff_max=1.0,
        )
        sinks.append(MqttSink(cfg, f"sim{i:02d}", model="replay").start())
    for s in sinks:
        s.wait_connected(20)
    period = 1.0 / args.fps
    start = time.monotonic() + 0.2
    heap = [(start + i * period / args.devices, i, 0) for i in range(args.devices)]
    heapq.heapify(heap)
    end = start + args.seconds
    late = 0
    next_status = start + 5.0
    print("running", flush=True)
    cpu0, wall0 = time.process_time(), time.monotonic()
    while heap:
        t, i, n = heapq.heappop(heap)
        if t >= end or time.monotonic() >= end:
            break  # a bounded run: on a machine too busy to keep the pace, fewer frames go out (counted as late)
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
        elif d < -period:
            late += 1
        fr = FrameResult.from_dict(records[n % len(records)])
        fr.index, fr.timestamp = n, time.time()  # stamped at publish: the latency the browser measures starts here
        sinks[i].publish_frame(fr)
        heapq.heappush(heap, (t + period, i, n + 1))
        if time.monotonic() >= next_status:
            next_status += 5.0
            for s in sinks:
                s.publish_status("online")
    pub_wall = time.monotonic() - wall0
    cpu = (time.process_time() - cpu0) / pub_wall
    per = {}
    for s in sinks:
        s.close(reason="stopped", timeout=20)
        per[s.device_id] = {
            "poses": s.stats.poses_sent,
            "events": s.stats.events_queued,
            "events_acked": s.stats.events_sent,
            "dropped": s.stats.poses_dropped,
        }
    print(json.dumps({"late": late, "cpu": cpu, "seconds": pub_wall, "devices": per}), flush=True)


def fleet(
    n_dev: int, fps: float, seconds: float, tmp: Path
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    from tests.conftest_web import new_browser
    from tests.mosquitto import Mosquitto, free_port

    rec = make_recording(tmp / "street.jsonl", 75)
    broker = Mosquitto(tmp / "broker").start()
    http_port = free_port()
    cfgfile = tmp / "view.toml"
    cfgfile.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    cli = list(EDGEPOSE)
    view = subprocess.Popen(
        [*cli, "view", "--config", str(cfgfile), "--http-port", str(http_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    listen_out = tmp / "all.jsonl"
    listen = subprocess.Popen(
        [*cli, "listen", "--config", str(cfgfile), "--device", "+", "--jsonl", str(listen_out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    t_wait = time.monotonic() + 30
    while broker.log_text().count("Sending SUBACK") < 2:
        if time.monotonic() > t_wait:
            raise SystemExit("view or listen did not subscribe:\n" + broker.log_text()[-2000:])
        time.sleep(0.1)
    drv = new_browser(tmp / "chromium-profile")
    drv.get(f"http://127.0.0.1:{http_port}/")
    chromium_pid = drv.service.process.pid  # chromedriver; Chromium and its renderers are its descendants
    sim = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--simulate",
            "--port",
            str(broker.port),
            "--devices",
            str(n_dev),
            "--fps",
            str(fps),
            "--seconds",
            str(seconds),
            "--recording",
            str(rec),
            "--workdir",
            str(tmp),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    if sim.stdout.readline().strip() != "running":
        raise SystemExit("the simulator did not start:\n" + sim.communicate()[1][-3000:])
    drv.execute_script("window.edgeposeStats.latencies.length = 0")
    procs = {
        "mosquitto": broker.proc.pid,
        f"simulator ({n_dev} devices)": sim.pid,
        "edgepose view": view.pid,
        "edgepose listen --jsonl": listen.pid,
        "chromium (all processes)": chromium_pid,
    }
    cpu0 = {k: tree_cpu(p) for k, p in procs.items()}
    m0, t0 = machine_busy(), time.monotonic()
    load0 = os.getloadavg()[0]
    out, err = sim.communicate(timeout=seconds + 120)
    wall = time.monotonic() - t0
    cpu1 = {k: tree_cpu(p) for k, p in procs.items() if k != f"simulator ({n_dev} devices)"}
    m1 = machine_busy()
    if sim.returncode != 0:
        raise SystemExit("the simulator failed:\n" + err[-3000:])
    summary = json.loads(out.strip().splitlines()[-1])
    time.sleep(1.5)  # the last events and the offline statuses reach the subscribers
    lat = drv.execute_script("return window.edgeposeStats.latencies.slice()")
    fleet_state = json.loads(
        __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{http_port}/api/fleet").read()
    )
    drv.quit()
    listen.send_signal(signal.SIGTERM)
    listen.communicate(timeout=60)
    view.send_signal(signal.SIGTERM)
    view.communicate(timeout=30)
    broker.stop()

    per = summary["devices"]
    secs = summary["seconds"]
    published_poses = sum(d["poses"] for d in per.values())
    published_events = sum(d["events"] for d in per.values())
    acked = sum(d["events_acked"] for d in per.values())
    view_poses = sum(d.get("frames", 0) for d in fleet_state["devices"])
    view_events = sum(d.get("events", 0) for d in fleet_state["devices"])
    rec_lines = listen_out.read_text().splitlines() if listen_out.exists() else []
    rec_events = sum(len(json.loads(line).get("events", [])) for line in rec_lines)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")  # noqa: E731
    machine = (m1[0] - m0[0]) / max(m1[1] - m0[1], 1) * (os.cpu_count() or 1) * 100
    ours = sum(cpu1[k] - cpu0[k] for k in cpu1) / wall * 100 + summary["cpu"] * 100
    rows = [
        ("devices x FPS, run", f"{n_dev} x {fps:g} FPS for {secs:.1f} s"),
        (
            "poses published / offered (simulator pace)",
            f"{published_poses} / {int(n_dev * fps * secs)} = "
            f"{published_poses / max(n_dev * fps * secs, 1):.3f}; {summary['late']} frames late by > 1 period",
        ),
        (
            "messages into the broker /s",
            f"{(published_poses + published_events) / secs:.0f} (poses {published_poses / secs:.0f}, "
            f"events {published_events / secs:.1f}; plus status/state)",
        ),
        (
            "messages out of the broker /s",
            f"{(view_poses + len(rec_lines) + view_events + rec_events) / secs:.0f} (2 subscribers)",
        ),
        (
            "edgepose view kept up (poses received / published)",
            f"{view_poses}/{published_poses} = {view_poses / max(published_poses, 1):.4f}",
        ),
        (
            "listen --jsonl kept up (frames recorded / published)",
            f"{len(rec_lines)}/{published_poses} = {len(rec_lines) / max(published_poses, 1):.4f}",
        ),
        ("QoS 1 events published / acked by broker", f"{published_events} / {acked}"),
        (
            "QoS 1 events lost: view / listen --jsonl",
            f"{published_events - view_events} / {published_events - rec_events}",
        ),
        (
            "publish -> browser latency p50 / p99",
            f"{pct(0.5):.0f} / {pct(0.99):.0f} ms ({len(lat)} poses reached the page; view "
            f"sends each device's newest 20 times a second, older ones in a batch are superseded)",
        ),
        (
            "machine CPU busy during the run",
            f"{machine:.0f} % of {os.cpu_count()} cores ({machine - ours:.0f} % not ours); "
            f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}",
        ),
    ]
    cpu_rows = [(f"simulator ({n_dev} devices, while publishing)", f"{summary['cpu'] * 100:.0f} %", "")]
    cpu_rows += [(k, f"{(cpu1[k] - cpu0[k]) / wall * 100:.0f} %", "") for k in cpu1]
    return rows, cpu_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=25.0, help="fleet run length (at most 60)")
    ap.add_argument("--block", type=int, default=20, help="frames per block of the frame-loop comparison")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--skip-fleet", action="store_true")
    # internal: the simulator process
    ap.add_argument("--simulate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--recording", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.simulate:
        simulate(args)
        return
    args.seconds = min(args.seconds, 60.0)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if not args.skip_loop:
        rows = frame_loop(args.block, args.rounds)
        table(
            f"1. frame loop of serve on the shared clip ({args.rounds} rounds x {args.block} frames per mode, round-robin; "
            "medians of the blocks)",
            ["mode", "wall ms per frame", "ratio", "CPU ms per frame (process)", "ratio", "notes"],
            [
                [mode, f"{ms:.1f}", f"{ratio:.3f}", f"{cms:.1f}", f"{cratio:.3f}", note]
                for mode, ms, ratio, cms, cratio, note in rows
            ],
            "lrrrrl",
        )
    if not args.skip_fleet:
        with tempfile.TemporaryDirectory(prefix="edgepose-webbench-") as d:
            rows2, cpu_rows = fleet(args.devices, args.fps, args.seconds, Path(d))
        table(
            "2. fleet: one Mosquitto on loopback, simulated devices, edgepose view + headless Chromium, edgepose listen --jsonl",
            ["figure", "value"],
            [[str(k), str(v)] for k, v in rows2],
        )
        table(
            "   CPU of each process",
            ["process", "CPU (% of one core)"],
            [[str(k), str(v)] for k, v, _ in cpu_rows],
            "lr",
        )


if __name__ == "__main__":
    main()
