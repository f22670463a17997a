"""Why a connection to the broker failed, as ``(problem, fix)`` pairs the sink logs once per change.

paho reports a refused socket, a TLS error or a CONNACK reason code; a user needs the setting to change.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from .config import MqttConfig


def explain_connect_failure(exc: BaseException | None, host: str, port: int, tls: bool) -> tuple[str, str]:
    """``(problem, fix)`` for a failed TCP/TLS connection attempt."""
    where = f"MQTT broker {host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"{where}: TLS certificate not accepted ({exc.verify_message or exc}).",
            "set mqtt.tls.ca_file to the CA that signed the broker's certificate, and connect by a host name the certificate names "
            "(or mqtt.tls.insecure_hostname = true).",
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"{where}: TLS handshake failed ({exc.reason or exc}).",
            "check that the port is a TLS listener, and mqtt.tls.cert_file/key_file if the broker requires a client certificate.",
        )
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"{where} refused the connection (nothing listening).",
            "start the broker or fix mqtt.host / mqtt.port.",
        )
    if isinstance(exc, socket.gaierror):
        return (f"cannot resolve the MQTT broker host {host!r} ({exc}).", "fix mqtt.host or the device's DNS.")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return (f"{where} did not answer (timed out).", "check the network path and firewall to the broker.")
    if isinstance(exc, ConnectionResetError) and tls:
        return (
            f"{where} closed the TLS connection.",
            "the broker may require a client certificate: set mqtt.tls.cert_file and key_file.",
        )
    if isinstance(exc, OSError):
        return (f"{where}: {exc.strerror or exc}.", "check mqtt.host, mqtt.port and the network.")
    return (f"{where}: connection failed ({exc!r}).", "check mqtt.host, mqtt.port and the broker's log.")


def explain_refusal(reason: Any, host: str, port: int, cfg: MqttConfig) -> tuple[str, str]:
    """``(problem, fix)`` for a CONNACK with a failure reason code."""
    text = str(reason)
    low = text.lower()
    where = f"MQTT broker {host}:{port} refused the login"
    if "not authorized" in low or "bad user name" in low or "password" in low:
        who = f"user {cfg.username!r}" if cfg.username else "anonymous (no mqtt.username set)"
        src = f"the environment variable {cfg.password_env}" if cfg.password_env else "mqtt.password"
        return (
            f"{where} for {who}: {text}.",
            f"check mqtt.username and the password in {src}, and the broker's password file/ACL.",
        )
    if "identifier" in low:
        return (f"{where}: {text} (client id {cfg.client_id!r}).", "set mqtt.client_id to a value the broker accepts.")
    if "protocol" in low:
        return (f"{where}: {text}.", 'set mqtt.protocol = "3.1.1" for brokers without MQTT 5.')
    return (f"{where}: {text}.", "see the broker's log.")


#: Seconds from an accepted TCP connection to the broker's CONNACK before the attempt counts as failed.
CONNACK_TIMEOUT = 5.0


def speaks_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when ``host:port`` answers a TLS handshake (completes it, or refuses it with a TLS alert)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw, server_hostname=host):
            return True
    except ssl.SSLError as e:
        return "alert" in str(e).lower()
    except OSError:
        return False


def explain_no_connack(host: str, port: int, *, closed: bool, tls_port: bool) -> tuple[str, str]:
    """``(problem, fix)`` for a TCP connection that never brought a CONNACK (a listener that is not plain MQTT)."""
    where = f"{host}:{port}"
    if tls_port:
        return (
            f"MQTT broker {where} {'closed the connection' if closed else 'did not answer'} before a CONNACK: that port speaks TLS.",
            "set mqtt.tls.enabled = true (and mqtt.tls.ca_file), or use the broker's plain port (usually 1883).",
        )
    if closed:
        return (
            f"{where} accepted the connection and closed it without a CONNACK: not an MQTT broker, or a broker that was stopping.",
            "check mqtt.host and mqtt.port (MQTT is usually 1883, 8883 with TLS) and the broker's log.",
        )
    return (
        f"{where} accepted the connection but sent no CONNACK within {CONNACK_TIMEOUT:g} s: not an MQTT broker, or one too busy to answer.",
        "check mqtt.host and mqtt.port (MQTT is usually 1883, 8883 with TLS) and the broker's load.",
    )
