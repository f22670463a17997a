"""Where edgepose keeps files on a machine: every directory helper in one place.

``EDGEPOSE_CACHE_DIR`` moves the cache (models, numba's compiled code, bundle
wheels); without it the platform's user cache dir is used. Under systemd the
unit sets it (``CacheDirectory=``), because ``ProtectSystem=strict`` makes the
install read-only and ``ProtectHome`` hides the home directory.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EDGEPOSE_CACHE_DIR"


def cache_root() -> Path:
    """``EDGEPOSE_CACHE_DIR`` or the platform's user cache dir for edgepose."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("edgepose"))


def models_dir() -> Path:
    """Downloaded models (see :mod:`edgepose.model.zoo`)."""
    return cache_root() / "models"


def numba_cache_dir() -> Path:
    """Where numba keeps compiled code: ``NUMBA_CACHE_DIR``, else ``<edgepose cache>/numba``."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    return cache_root() / "numba"


def wheels_dir(tag: str) -> Path:
    """Wheels downloaded for an offline bundle of platform ``tag``."""
    return cache_root() / "wheels" / tag


def state_dir() -> Path:
    """The platform's user state dir for edgepose (the MQTT outbox by default)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("edgepose"))
