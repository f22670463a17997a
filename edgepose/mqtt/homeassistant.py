"""Home Assistant MQTT discovery (opt-in: ``[mqtt.homeassistant] enabled = true``).

The device appears in Home Assistant with three entities and no YAML:

* ``sensor.<device>_people``: people in view (from the retained ``state`` topic),
* ``binary_sensor.<device>_fall``: ``on`` for ``fall_hold`` seconds after a fall event,
* ``sensor.<device>_actions``: the ongoing actions, comma-separated (``none`` when idle).

All three are ``available`` while the retained ``status`` topic says ``online``,
so the Last Will marks them unavailable when the device drops off.
Config messages are retained and re-sent when Home Assistant announces
``online`` on ``<discovery_prefix>/status`` (its birth message).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .config import MqttConfig

#: Seconds between two rounds of discovery at most, however often Home Assistant announces itself.
DISCOVERY_MIN_INTERVAL = 10.0


def discovery_messages(
    cfg: MqttConfig, device_id: str, version: str, model: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``(topic, payload)`` of every discovery config message (publish retained)."""
    prefix = cfg.homeassistant.discovery_prefix.rstrip("/")
    state_topic = cfg.topic(device_id, "state")
    node = device_id.replace(".", "_")  # HA object ids allow [a-zA-Z0-9_-]
    device = {
        "identifiers": [f"edgepose_{node}"],
        "name": f"edgepose {device_id}",
        "manufacturer": "edgepose",
        "model": f"PoseNet ({model})" if model else "PoseNet",
        "sw_version": version,
    }
    common = {
        "state_topic": state_topic,
        "availability_topic": cfg.topic(device_id, "status"),
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
        "json_attributes_topic": state_topic,
    }
    people = {
        **common,
        "name": "People",
        "unique_id": f"edgepose_{node}_people",
        "value_template": "{{ value_json.people }}",
        "state_class": "measurement",
        "unit_of_measurement": "people",
        "icon": "mdi:account-group",
    }
    fall = {
        **common,
        "name": "Fall",
        "unique_id": f"edgepose_{node}_fall",
        "device_class": "safety",
        "value_template": "{{ 'ON' if value_json.fall else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
    }
    actions = {
        **common,
        "name": "Actions",
        "unique_id": f"edgepose_{node}_actions",
        "value_template": "{{ value_json.actions | join(', ') if value_json.actions else 'none' }}",
        "icon": "mdi:run",
    }
    return [
        (f"{prefix}/sensor/{node}/people/config", people),
        (f"{prefix}/binary_sensor/{node}/fall/config", fall),
        (f"{prefix}/sensor/{node}/actions/config", actions),
    ]


def birth_topic(cfg: MqttConfig) -> str:
    return f"{cfg.homeassistant.discovery_prefix.rstrip('/')}/status"


class DiscoveryPacer:
    """Calls ``send`` when Home Assistant announces itself: at once, or once at the end of the rate-limit window
    (a flood of births, e.g. 2,000 retained-message replays, costs one round, not 3 publishes each)."""

    def __init__(self, send: Callable[[], None], min_interval: float = DISCOVERY_MIN_INTERVAL):
        self._send = send
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = 0.0

    def sent(self) -> None:
        """A round went out by other means (on connect): the window starts now."""
        self._last = time.monotonic()

    def wanted(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a round is already scheduled
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._round)
                self._timer.daemon = True
                self._timer.start()
                return
        self._round()

    def _round(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self._send()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
