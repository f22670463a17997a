"""``Service.run`` returns a real exit code: 0 for a normal end, non-zero when the service cannot go on."""
from __future__ import annotations

import json

from edgepose.errors import ModelError
from edgepose.service.runner import Service
from edgepose.sinks.mqtt import MqttSink
from edgepose.sinks.mqtt_config import MqttConfig
from tests.conftest_mqtt import frame
from tests.mosquitto import Subscriber

DEVICE = "exit-pi"


def _sink(port: int, tmp_path) -> MqttSink:
    cfg = MqttConfig(host="127.0.0.1", port=port, outbox_path=str(tmp_path / "o.sqlite"), status_interval=60)
    return MqttSink(cfg, DEVICE)


def test_input_that_ends_exits_zero(broker, tmp_path, real_poses):
    svc = Service(_sink(broker.port, tmp_path), lambda: iter([frame(i, real_poses) for i in range(3)]), status_interval=60)
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
        src = open_source("/dev/video97", on_state=svc.source_state_changed, retry_first_open=True,
                          retry_initial_s=0.05, retry_max_s=0.1, retry_max_attempts=2)
        svc.source = src
        return src

    svc = Service(_sink(broker.port, tmp_path), frames, status_interval=60, retry_min=0.05, retry_max=0.1)
    code = svc.run()
    assert code != 0, code
    assert "attempts" in str(svc.fatal)
    json.dumps(svc.status_fields())  # the status still renders after a fatal error
