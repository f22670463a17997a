"""Network helpers: what counts as this machine, and how long to wait before trying again."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator


def backoff_delays(initial: float, maximum: float, factor: float = 2.0) -> Iterator[float]:
    """``initial, initial*factor, ...`` capped at ``maximum`` (infinite generator).

    The one back-off of edgepose: camera reopening, the service's source retries, model downloads.
    """
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * factor, maximum)


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``, bracketed or not).

    A server bound there, or a broker reached there, is out of the network's reach: no credentials are needed to
    serve it and no password crosses a wire.
    """
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
