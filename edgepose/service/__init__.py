"""The long-running device service: ``edgepose serve``.

:class:`~edgepose.service.runner.Service` runs any iterable of
:class:`~edgepose.types.FrameResult` (normally :class:`edgepose.pipeline.Pipeline`)
into an :class:`~edgepose.sinks.mqtt.MqttSink`, with a durable event outbox,
a status heartbeat, systemd readiness/watchdog notifications and a graceful
stop on SIGTERM.
"""
from __future__ import annotations

from .outbox import Outbox, OutboxItem

__all__ = ["Outbox", "OutboxItem"]
