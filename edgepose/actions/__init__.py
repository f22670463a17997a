"""Action recognition per tracked person: rule recognisers and a learned temporal classifier."""

from __future__ import annotations

from .config import ActionsConfig
from .engine import ActionEngine

__all__ = ["ActionEngine", "ActionsConfig"]
