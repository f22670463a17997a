"""Docker HEALTHCHECK for the edgepose container (exit 0 healthy, 1 unhealthy).

1. If the service keeps a health file (``$EDGEPOSE_HEALTH_FILE``, default
   ``/tmp/edgepose-health``) touched while frames flow, it must be younger
   than ``$EDGEPOSE_HEALTH_MAX_AGE`` seconds (default 120).
2. Otherwise the check can only confirm that the main process (PID
   ``$EDGEPOSE_HEALTH_PID``, default 1) is edgepose and neither a zombie nor stopped.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def check(environ: dict[str, str] | None = None, proc: Path = Path("/proc")) -> tuple[bool, str]:
    env = dict(os.environ if environ is None else environ)
    health = Path(env.get("EDGEPOSE_HEALTH_FILE", "/tmp/edgepose-health"))
    max_age = float(env.get("EDGEPOSE_HEALTH_MAX_AGE", "120"))
    if health.exists():
        age = time.time() - health.stat().st_mtime
        return age <= max_age, f"health file {health} is {age:.0f} s old (limit {max_age:.0f} s)"
    pid = env.get("EDGEPOSE_HEALTH_PID", "1")
    try:
        cmdline = (proc / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        stat = (proc / pid / "stat").read_text()
    except OSError as e:
        return False, f"process {pid} not readable: {e}"
    state = stat.rsplit(")", 1)[1].split()[0]  # the field after "(comm)"
    if "edgepose" not in cmdline:
        return False, f"process {pid} is not edgepose: {cmdline.strip()!r}"
    if state in ("Z", "T", "t", "X"):
        return False, f"edgepose (pid {pid}) is in state {state}"
    return True, f"edgepose (pid {pid}) is running (state {state}); no health file"


if __name__ == "__main__":
    ok, why = check()
    print(why)
    sys.exit(0 if ok else 1)
