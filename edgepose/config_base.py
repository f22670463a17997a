"""The base of every configuration section.

Each section model lives with the code that uses it (``sources/config.py``,
``mqtt/config.py``, ...) and derives from :class:`ConfigModel`, so all
of them refuse unknown keys (a typo is an error, not a silently ignored
line) and describe every field with ``Field(description=...)``: the config
reference, firmware_configs/CONFIG.md, is generated from those descriptions
(``edgepose docs``, :mod:`edgepose.docgen`).
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class ConfigModel(BaseModel):
    # protected_namespaces=(): sections have fields named model / model_path.
    # allow_inf_nan=False: `nan` and `inf` are valid TOML floats, and NaN passes no bound check (every comparison is
    # False), so an interval of nan or inf would reach the code; every section refuses them, naming the field.
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `port = true` as 1 and `threads = false` as 0: a typo, never a number.
        if isinstance(v, bool) and info.field_name is not None:
            kinds = typing.get_args(cls.model_fields[info.field_name].annotation) or (
                cls.model_fields[info.field_name].annotation,
            )
            if bool not in kinds and any(k in (int, float) for k in kinds):
                raise ValueError(f"a number is needed, not {str(v).lower()}")
        return v
