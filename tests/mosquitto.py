"""Real Mosquitto brokers for tests: generated config, TLS certificates and password files.

Used by the MQTT and service tests (fixtures in ``tests/conftest_mqtt.py``).
Certificates come from the ``openssl`` command line (Debian's ``openssl``);
passwords from ``mosquitto_passwd`` (Debian's ``mosquitto``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from .procs import free_port, wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> TlsFiles:
    """A throw-away CA, a server certificate for localhost/127.0.0.1 and a client certificate (EC P-256, 2 days)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityKeyIdentifier=keyid\n"
    )
    (d / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=edgepose test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    for name, cn in (("server", "localhost"), ("client", "edgepose-device")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return TlsFiles(d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    path.write_text("")
    for user, password in users.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), user, password], check=True, capture_output=True, timeout=30)
    path.chmod(0o600)
    return path


class Mosquitto:
    """One broker process on 127.0.0.1. ``port`` stays the same across :meth:`kill` / :meth:`start`."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: TlsFiles | None = None,
        password_file: Path | None = None,
        persistence: bool = False,
        port: int | None = None,
    ):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.password_file = password_file
        self.persistence = persistence
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        self._write_conf()

    def _write_conf(self) -> None:
        lines = []
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to user `mosquitto`, who cannot read the test's files
        lines += [
            f"log_dest file {self.log}",
            "log_type all",
            f"persistence {'true' if self.persistence else 'false'}",
        ]
        if self.persistence:
            # Save after every change so that a SIGKILL keeps subscriptions and queued messages.
            lines += [f"persistence_location {self.dir}/", "autosave_interval 1", "autosave_on_changes true"]
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
            ]
        if self.password_file is not None:
            lines += [f"password_file {self.password_file}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        proc = self.proc
        if not wait_until(lambda: port_open(self.port) or proc.poll() is not None, timeout, interval=0.02, fail=False):
            raise RuntimeError(f"mosquitto did not listen on {self.port}\n{self.log_text()}")
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {err}\n{self.log_text()}")
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no persistence save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        wait_until(lambda: not port_open(self.port), 5, fail=False)  # free again, so that a restart can bind it

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_subscribed(self, client_id: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
        """Until the broker has sent a SUBACK to ``client_id`` (a prefix), so what is published next is received;
        fails with ``proc``'s output if it exits first."""
        wait_until(
            lambda: f"Sending SUBACK to {client_id}" in self.log_text() or proc.poll() is not None,
            timeout,
            "the SUBACK",
        )
        assert proc.poll() is None, proc.communicate()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Subscriber:
    """A plain paho subscriber that records ``(topic, payload, retain)`` and lets tests wait for conditions."""

    def __init__(
        self,
        port: int,
        topics: str | list[str] = "#",
        *,
        qos: int = 1,
        client_id: str = "",
        persistent: bool = False,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
    ):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{os.getpid()}-{id(self)}",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=not persistent,
        )
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls.ca_cert), certfile=str(tls.client_cert), keyfile=str(tls.client_key))
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscriber did not get SUBACK"

    def _on_connect(self, client, userdata, flags, reason, properties):
        if not reason.is_failure:
            client.subscribe([(t, self.qos) for t in self.topics])

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def on(self, suffix: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def json_on(self, suffix: str) -> list[dict]:
        return [json.loads(p) for p in self.on(suffix) if p]

    def wait_for(self, pred: Callable[[Subscriber], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
