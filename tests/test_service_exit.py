"""``Service.run`` returns a real exit code: 0 for a normal end, non-zero when the service cannot go on."""

from __future__ import annotations

import json

import pytest

from edgepose.errors import ModelError
from edgepose.mqtt.config import MqttConfig
from edgepose.mqtt.sink import MqttSink
from edgepose.service.runner import Service
from tests.conftest_mqtt import frame
from tests.mosquitto import Subscriber
from tests.procs import edgepose

pytestmark = pytest.mark.integration  # every test here starts a broker, a browser or a subprocess

DEVICE = "exit-pi"


def _sink(port: int, tmp_path) -> MqttSink:
    cfg = MqttConfig(host="127.0.0.1", port=port, outbox_path=str(tmp_path / "o.sqlite"), status_interval=60)
    return MqttSink(cfg, DEVICE)


def test_input_that_ends_exits_zero(broker, tmp_path, real_poses):
    svc = Service(
        _sink(broker.port, tmp_path), lambda: iter([frame(i, real_poses) for i in range(3)]), status_interval=60
    )
    assert svc.run() == 0 and svc.fatal is None


def test_model_that_cannot_load_exits_non_zero(broker, tmp_path):
    sub = Subscriber(broker.port, f"edgepose/{DEVICE}/status")
    calls = []
    sink = _sink(broker.port, tmp_path)

    def frames():
        calls.append(1)
        sink.wait_connected(10)  # so that the offline status can say why
        raise ModelError("model.tflite is not a TFLite file.", "point model.path at a .tflite model.")

    svc = Service(sink, frames, status_interval=60, retry_min=0.05)
    assert svc.run() == ModelError.exit_code != 0
    assert len(calls) == 1  # not retried like a missing camera
    assert sub.wait_for(lambda s: any(d.get("state") == "offline" for d in s.json_on("/status")), 10)
    sub.close()
    offline = [d for d in sub.json_on("/status") if d.get("state") == "offline"][-1]
    assert "not a TFLite file" in offline["reason"], offline


def test_source_that_failed_for_good_exits_non_zero(broker, tmp_path):
    """A live source out of reopen attempts (the real RetryingSource): the service stops with a non-zero code."""
    from edgepose.sources import open_source

    svc: Service

    def frames():
        src = open_source(
            "/dev/video97",
            on_state=svc.source_state_changed,
            retry_first_open=True,
            retry_initial_s=0.05,
            retry_max_s=0.1,
            retry_max_attempts=2,
        )
        svc.source = src
        return src

    svc = Service(_sink(broker.port, tmp_path), frames, status_interval=60, retry_min=0.05, retry_max=0.1)
    code = svc.run()
    assert code != 0, code
    assert "attempts" in str(svc.fatal)
    json.dumps(svc.status_fields())  # the status still renders after a fatal error


def test_fps_is_frames_over_elapsed_time_for_bursty_frames(broker, tmp_path, real_poses):
    """Issue 10: frames that come in bursts (a prefetch queue) at 30 fps overall; the mean of per-frame
    rates read about 6x too high."""
    import time

    from edgepose.fps import window_fps

    assert window_fps([0.0, 0.001, 0.002, 0.2]) == 15.0 and window_fps([1.0]) is None
    svc: Service

    def frames():
        for i in range(60):
            if i % 5 == 0:
                time.sleep(5 / 30)  # five frames every 1/6 s, back to back
            yield frame(i, real_poses)
        assert 24 <= svc.fps <= 36, svc.fps  # the mean of per-frame rates: several hundred
        fps_seen.append(svc.status_fields()["fps"])

    fps_seen: list[float] = []
    svc = Service(_sink(broker.port, tmp_path), frames, status_interval=60)
    assert svc.run() == 0
    assert fps_seen and 24 <= fps_seen[0] <= 36, fps_seen


def test_serve_prints_a_start_summary_and_status_lines_without_v(broker, tmp_path, real_poses):

    rec = tmp_path / "rec.jsonl"
    rec.write_text("".join(json.dumps(frame(i, real_poses).to_dict()) + "\n" for i in range(90)))
    cfg = tmp_path / "device.toml"
    cfg.write_text(
        f'device_id = "{DEVICE}"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'outbox_path = "{tmp_path / "o.sqlite"}"\n'
    )
    r = edgepose(
        "serve", "--config", str(cfg), "--replay", str(rec), "--replay-fps", "30", "--status-every", "1", timeout=60
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    starts = [ln for ln in lines if ln.startswith("edgepose serve: started:")]
    assert len(starts) == 1 and f"broker 127.0.0.1:{broker.port} (MQTT 5)" in starts[0] and "rec.jsonl" in starts[0]
    assert f"topics edgepose/{DEVICE}/{{poses,events,status,state}}" in starts[0]
    status = [ln for ln in lines if ln.startswith("edgepose serve: status:")]
    assert len(status) >= 2, r.stderr
    fps = [float(ln.split(" fps")[0].rsplit(" ", 1)[1]) for ln in status]
    assert all(20 <= f <= 33 for f in fps[1:]), status
    assert "MQTT connected" in status[-1]
