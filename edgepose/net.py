"""Network addresses: what counts as this machine."""
from __future__ import annotations

import ipaddress


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
