"""What differs between the Python versions edgepose runs on (3.10 and later): the one place that knows."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (Raspberry Pi OS Bullseye): the same API from PyPI
    import tomli as tomllib

__all__ = ["tomllib"]
