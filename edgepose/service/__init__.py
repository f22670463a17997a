"""The long-running device service: ``edgepose serve``.

:class:`~edgepose.service.runner.Service` runs any iterable of
:class:`~edgepose.types.FrameResult` (normally :class:`edgepose.pipeline.Pipeline`)
into an :class:`~edgepose.mqtt.sink.MqttSink` (which owns the durable event
outbox, :mod:`edgepose.mqtt.outbox`), with a status heartbeat, systemd readiness/watchdog notifications and a graceful
stop on SIGTERM.
"""
