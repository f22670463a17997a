"""Virtual environments that tests build once and reuse: ~/.cache/edgepose/test-venvs/<name>-<hash of the spec>.

A venv is made by the Python running the tests, with ``pip install`` of the given requirements (from
the package index pip is configured with); a marker file written last says it is complete, so an
interrupted build is made again rather than half used, and a lock file keeps two test runs (other
worktrees share the cache) from building the same venv at once. Tests treat a cached venv as read-only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path


def venv_root() -> Path:
    return Path(os.environ.get("EDGEPOSE_TEST_VENVS", Path.home() / ".cache" / "edgepose" / "test-venvs"))


def cached_venv(name: str, requirements: list[str], *, timeout: float = 1200) -> Path:
    """The python of a venv holding exactly ``requirements`` (and pip), built on first use."""
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:12]
    root = venv_root() / f"{name}-{key}"
    python = root / "bin" / "python"
    done = root / ".complete"
    if done.exists() and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and python.exists():  # built by another run while this one waited
            return python
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
        if requirements:
            r = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            assert r.returncode == 0, f"pip install {' '.join(requirements)} into {root} failed:\n{r.stderr[-3000:]}"
        done.write_text("\n".join(requirements) + "\n")
    return python
