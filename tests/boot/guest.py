"""Boot a flashed card image under qemu-system-aarch64 (``-M virt``, TCG) and watch its console.

The kernel, initramfs and command line come from the image's FAT boot partition, as a Pi's
firmware takes them (kernel8.img, initramfs8, cmdline.txt), read again at every boot: Imager's
firstrun.sh edits cmdline.txt and reboots. One mapping is made, and only for the console: the Pi's
``serial0`` is the virt board's ``ttyAMA0``, put last so that it is ``/dev/console`` (on a Pi,
HDMI's tty1 is). Networking is user-mode with ``restrict=on``: the guest reaches nothing outside,
only the forwards named here (host ports on 127.0.0.1 into the guest; guest 10.0.2.100:1883 to
the test's broker on the host's loopback).
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgepose.provision.image import Fat, find_boot_partition

GUEST_BROKER = "10.0.2.100"  # where the guest finds the site's broker (a guestfwd to the host's)
GUEST_HTTP = 8080

#: Console lines that mark a step; the first match of each is kept, in seconds since power-on.
MILESTONES = {
    "kernel": re.compile(r"Booting Linux on physical CPU"),
    "systemd": re.compile(r"systemd\[1\]: systemd \d+|Welcome to .*Debian"),
    "cloud-init start": re.compile(r"Cloud-init v\. .* running 'init-local'|Cloud-init v\. .* running 'init'"),
    # flash's final_message replaces cloud-init's own "finished at" line.
    "cloud-init done": re.compile(r"Cloud-init v\. .* finished at|edgepose provisioning finished after"),
    "firstrun reboot": re.compile(r"reboot: Restarting system"),
    "install start": re.compile(r"edgepose-firstboot: bundle verified"),
    "compile start": re.compile(r"edgepose-firstboot: compiling"),
    "provisioned": re.compile(r"edgepose-firstboot: provisioned"),
    "service started": re.compile(r"Started edgepose\.service"),
    "login prompt": re.compile(r"login: *$"),
}


class GuestError(Exception):
    """The guest could not be started or did not get where it should."""


def console_cmdline(cmdline: str) -> str:
    """The flashed cmdline.txt with the Pi's serial console as the virt board's, last (so /dev/console)."""
    words = [w for w in cmdline.split() if not w.startswith("console=")]
    consoles = [w for w in cmdline.split() if w.startswith("console=") and not w.startswith("console=tty1")]
    mapped = [re.sub(r"^console=serial0\b", "console=ttyAMA0", w) for w in consoles] or ["console=ttyAMA0,115200"]
    return " ".join(words + ["console=tty1"] * ("console=tty1" in cmdline.split()) + mapped)


@dataclass
class Guest:
    image: Path
    work: Path
    forwards: dict[int, int] = field(default_factory=dict)  # host port on 127.0.0.1 -> guest port
    broker_port: int | None = None  # the host's broker, reached from the guest as 10.0.2.100:1883
    memory_mb: int = 2048
    cpus: int = 2
    on_line: Callable[[float, str], None] | None = None
    t0: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)
    boots: int = 0
    lines: list[str] = field(default_factory=list)
    _proc: subprocess.Popen | None = None
    _thread: threading.Thread | None = None
    _stop: bool = False

    def _boot_files(self) -> tuple[Path, Path, str]:
        fat = Fat(self.image, find_boot_partition(self.image))
        files = {}
        for name in ("kernel8.img", "initramfs8", "cmdline.txt"):
            data = fat.read(name)
            if data is None:
                raise GuestError(f"the image's boot partition has no {name}")
            files[name] = data
        kernel, initrd = self.work / "kernel8.img", self.work / "initramfs8"
        kernel.write_bytes(files["kernel8.img"])
        initrd.write_bytes(files["initramfs8"])
        return kernel, initrd, console_cmdline(files["cmdline.txt"].decode().strip().splitlines()[0])

    def _command(self) -> list[str]:
        kernel, initrd, append = self._boot_files()
        self.cmdline = append
        net = "user,id=n0,restrict=on"
        for host, guest in self.forwards.items():
            net += f",hostfwd=tcp:127.0.0.1:{host}-:{guest}"
        if self.broker_port:
            socat = shutil.which("socat")
            if socat is None:
                raise GuestError("socat is missing (the guest's broker forward): apt-get install socat")
            net += f",guestfwd=tcp:{GUEST_BROKER}:1883-cmd:{socat} - TCP:127.0.0.1:{self.broker_port}"
        qemu = shutil.which("qemu-system-aarch64")
        if qemu is None:
            raise GuestError("qemu-system-aarch64 is missing: apt-get install qemu-system-arm")
        return [
            qemu,
            "-M",
            "virt",
            "-cpu",
            "cortex-a72",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            "-accel",
            "tcg,thread=multi",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            f"unix:{self.work / 'monitor.sock'},server,nowait",
            "-no-reboot",
            "-kernel",
            str(kernel),
            "-initrd",
            str(initrd),
            "-append",
            append,
            "-drive",
            f"if=none,id=d0,file={self.image},format=raw,cache=unsafe",
            "-device",
            "virtio-blk-pci,drive=d0",
            "-netdev",
            net,
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-rng-pci",
        ]

    def _read(self, proc: subprocess.Popen, log) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            t = time.monotonic() - self.t0
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line)
            self.lines.append(line)
            log.write(f"[{t:8.1f}] {line}\n")
            log.flush()
            for name, rx in MILESTONES.items():
                if name not in self.marks and rx.search(line):
                    self.marks[name] = t
            if self.on_line:
                self.on_line(t, line)

    def start(self) -> Guest:
        """Power on; the guest's reboots are followed by a new boot from the card's files."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with open(self.work / "console.log", "a", encoding="utf-8") as log:
            while not self._stop:
                cmd = self._command()
                self.boots += 1
                log.write(f"# boot {self.boots}: {shlex.join(cmd)}\n")
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
                self._read(self._proc, log)
                self._proc.wait()
                rebooted = any("reboot: Restarting system" in ln for ln in self.lines[-30:])
                if not rebooted or self._stop:
                    break

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, name: str, timeout: float) -> float:
        """Seconds since power-on at which the milestone ``name`` was seen; GuestError on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if name in self.marks:
                return self.marks[name]
            if not self.running:
                raise GuestError(
                    f"the guest stopped before '{name}'; last console lines:\n" + "\n".join(self.lines[-25:])
                )
            time.sleep(0.5)
        raise GuestError(f"no '{name}' within {timeout:.0f} s; last console lines:\n" + "\n".join(self.lines[-25:]))

    def monitor(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.work / "monitor.sock"))
            s.sendall(command.encode() + b"\n")
            time.sleep(0.3)
            s.settimeout(1)
            try:
                return s.recv(65536).decode("utf-8", "replace")
            except TimeoutError:
                return ""

    def poweroff(self, timeout: float = 300) -> bool:
        """ACPI-style power button (the virt board's GPIO key); True when the guest shut down by itself."""
        self._stop = True
        try:
            self.monitor("system_powerdown")
        except OSError:
            pass
        end = time.monotonic() + timeout
        while self.running and time.monotonic() < end:
            time.sleep(0.5)
        clean = not self.running
        self.kill()
        return clean

    def kill(self) -> None:
        self._stop = True
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._thread:
            self._thread.join(timeout=10)


def rootfs(image: Path, command: str) -> str:
    """A debugfs command on the card's ext4 root file system (partition 2), read in place: no mount, no loop."""
    from edgepose.provision.image import partitions

    _, parts = partitions(image)
    root = next(p for p in parts if p.number == 2)
    debugfs = shutil.which("debugfs") or "/usr/sbin/debugfs"
    r = subprocess.run(
        [debugfs, "-R", command, f"{image}?offset={root.start}"], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise GuestError(f"debugfs {command!r} failed: {r.stderr.strip()}")
    return r.stdout


def log(msg: str) -> None:
    print(f"boot: {msg}", file=sys.stderr, flush=True)
