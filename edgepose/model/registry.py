"""Model kinds: which loader opens a ``.tflite`` of a given model type.

A model says what it is in its edgepose metadata (``model_type``, see
:func:`edgepose.model.base.model_type`); models without metadata are PoseNet
keypoint models (Coral's, posenet-python's). Each kind is found through the
``edgepose.model_types`` entry-point group (pyproject.toml), so this module
imports none of them and a separate package can add a kind the same way.
:func:`register_model_type` adds one at run time (a notebook, a test).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelError
from . import flatbuf
from .base import model_type, read_model_bytes

ENTRY_POINT_GROUP = "edgepose.model_types"
Loader = Callable[..., Any]
_REGISTERED: dict[str, Loader] = {}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    eps: Any = entry_points()
    found = (
        eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    )  # 3.9: a dict
    return {ep.name: ep for ep in found}


def register_model_type(name: str, loader: Loader) -> None:
    """Make ``open_model`` use ``loader(path, **kw)`` for models whose metadata says ``model_type = name``."""
    _REGISTERED[name] = loader


def model_types() -> list[str]:
    return sorted(set(_entry_points()) | set(_REGISTERED))


def loader_for(kind: str, name: str = "model") -> Loader:
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    if kind in _entry_points():
        return _entry_points()[kind].load()
    if not model_types():
        raise ModelError(
            f"no model types are registered (the '{ENTRY_POINT_GROUP}' entry points of edgepose are missing).",
            "reinstall edgepose: pip install -e . in the checkout, or install its wheel.",
        )
    raise ModelError(
        f"{name} is a '{kind}' model, which this edgepose cannot run (known: {', '.join(model_types())}).",
        "upgrade edgepose or use a PoseNet keypoint model.",
    )


def model_type_of(path: str | Path) -> str:
    data, name = read_model_bytes(path)  # a regular file of a sane size only: /dev/zero must not be read
    flatbuf.check_tflite(data, name)
    return model_type(flatbuf.read_metadata(data, name))


def open_model(path_or_name: str | Path, **kw: Any) -> Any:
    """Resolve a registry name or path, and open it with the loader of its model type."""
    from .zoo import resolve_model

    path = resolve_model(str(path_or_name))
    return loader_for(model_type_of(path), path.name)(path, **kw)
