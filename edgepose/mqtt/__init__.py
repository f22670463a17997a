"""MQTT, both ways: the device publishes (:mod:`.sink`), ``edgepose listen`` and the fleet page subscribe.

One module a concern: :mod:`.config` (``[mqtt]``), :mod:`.client` (the paho client both sides use),
:mod:`.diagnosis` (why a connection failed, and the fix), :mod:`.outbox` (events kept on disk until their
PUBACK), :mod:`.payloads` (what goes on the wire), :mod:`.state` (the ``state`` topic's summary),
:mod:`.homeassistant` (discovery), :mod:`.inbound` (checking what a subscriber reads).
Nothing is imported here, so ``edgepose.mqtt.config`` loads without paho.
"""
