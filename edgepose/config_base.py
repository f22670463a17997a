"""The base of every configuration section.

Each section model lives with the code that uses it (``sources/config.py``,
``sinks/mqtt_config.py``, ...) and derives from :class:`ConfigModel`, so all
of them refuse unknown keys (a typo is an error, not a silently ignored
line) and describe every field with ``Field(description=...)``: the README's
config reference is generated from those descriptions (``python -m
edgepose.config reference``).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    # protected_namespaces=(): sections have fields named model / model_path.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
