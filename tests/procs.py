"""Ending the edgepose processes a test started (serve, listen, view)."""
from __future__ import annotations

import signal
import subprocess


def finish(proc: subprocess.Popen, timeout: float = 30, *, terminate: bool = False, sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Wait for ``proc`` (sending ``sig`` first when ``terminate``) and return its exit code and stderr.

    One that has not ended within ``timeout`` is killed and fails the test with the end of its stderr.
    """
    if terminate and proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{' '.join(str(a) for a in proc.args[2:6])} did not stop:\n{err[-3000:]}") from None
    return proc.returncode, err
