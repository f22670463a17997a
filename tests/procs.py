"""Processes a test starts: ``python -c`` snippets (with or without numba), and ending the edgepose
processes a test started (serve, listen, view)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Prefix of a snippet run as on a board without numba's wheels: ``import numba`` fails.
NO_NUMBA = "import sys\nsys.modules['numba'] = None  # import numba now fails, as on a board without its wheels\n"


def run_py(code: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` in the repository, with the tests' environment less the decoder's choice
    and numba's cache directory (so that ``env`` alone decides them), plus ``env``."""
    e = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "EDGEPOSE_DECODER")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=e, check=False)


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
