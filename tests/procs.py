"""The tests' helpers for processes and waiting: ``python -c`` snippets (with or without numba), the ``edgepose``
command run (:func:`edgepose`) or launched as a process (:func:`edgepose_process`, :func:`serve`) and ended, device configs written for it, free ports, and the one wait that polls (:func:`wait_until`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from tests.conftest import REPO

#: Prefix of a snippet run as on a board without numba's wheels: ``import numba`` fails.
NO_NUMBA = "import sys\nsys.modules['numba'] = None  # import numba now fails, as on a board without its wheels\n"


def run_py(code: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` in the repository, with the tests' environment less the decoder's choice
    and numba's cache directory (so that ``env`` alone decides them), plus ``env``."""
    e = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "EDGEPOSE_DECODER")}
    e.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=e, check=False
    )


def finish(
    proc: subprocess.Popen, timeout: float = 30, *, terminate: bool = False, sig: int = signal.SIGTERM
) -> tuple[int, str]:
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


#: The one way the tests start the command: ``python -m edgepose`` with this interpreter.
EDGEPOSE = (sys.executable, "-m", "edgepose")


def cli_env(env: Mapping[str, str | bytes | None] | None = None) -> dict:
    """The tests' environment with ``env`` on top; a ``None`` value removes that variable."""
    e: dict = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def edgepose(
    *args: str | bytes | os.PathLike,
    env: Mapping[str, str | bytes | None] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    text: bool = True,
    input: str | bytes | None = None,
) -> subprocess.CompletedProcess:
    """``edgepose ARGS`` run to its end, output captured (``text=False``: bytes, for argv or env that is not UTF-8).

    Its exit code is the caller's to check; ``env`` as :func:`cli_env`. One that outlives ``timeout`` fails the test.
    """
    return subprocess.run(
        [*EDGEPOSE, *args],
        capture_output=True,
        text=text,
        env=cli_env(env),
        cwd=cwd,
        timeout=timeout,
        input=input,
        check=False,
    )


def edgepose_process(
    *args: str | os.PathLike,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    **popen: Any,
) -> subprocess.Popen:
    """``edgepose ARGS`` started as a process (text pipes for its output unless told; end it with :func:`finish`)."""
    return subprocess.Popen(
        [*EDGEPOSE, *args], stdout=stdout, stderr=stderr, text=True, env=cli_env(env), cwd=cwd, **popen
    )


def serve(
    *args: str, env: Mapping[str, str | None] | None = None, cwd: Path | None = None, verbose: bool = False
) -> subprocess.Popen:
    """``edgepose [-v] serve ARGS`` as a process (pipes for its output; end it with :func:`finish`)."""
    return edgepose_process(*(["-v"] if verbose else []), "serve", *args, env=env, cwd=cwd)


def write_device_config(path: Path, device_id: str, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """A device config (TOML): ``device_id`` and one table per section (values are strings, numbers, booleans or lists)."""
    lines = [f"device_id = {json.dumps(device_id)}"]
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(str(v) if isinstance(v, Path) else v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: What a predicate of :func:`wait_until` may raise while the state it waits for is not there yet
#: (a server not listening, a page element or JSON key not there, an assertion inside the predicate).
NOT_YET = (OSError, AssertionError, ValueError, KeyError)


def wait_until(
    pred: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
    fail: bool = True,
) -> Any:
    """Poll ``pred`` every ``interval`` seconds until it returns something true, and return that.

    A predicate raising one of :data:`NOT_YET` counts as "not yet". After ``timeout`` seconds (and a last
    try) it fails the test with an ``AssertionError`` naming ``what`` and the last result or exception;
    with ``fail=False`` it returns that last, false result instead (``assert wait_until(..., fail=False), detail``
    for a failure message computed at the time, or a wait that may run out).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = pred()
        except NOT_YET as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if fail:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
    return None if isinstance(last, BaseException) else last
