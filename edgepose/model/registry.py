"""Model types: which loader opens a ``.tflite`` of a given kind.

A model says what it is in its edgepose metadata (``model_type``); models
without metadata are PoseNet keypoint models (Coral's, posenet-python's).
Other kinds (the camera-relocalization PoseNet) register a loader here and
their outputs travel in :attr:`FrameResult.extra`, so every sink carries them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import flatbuf

Loader = Callable[..., Any]
_LOADERS: dict[str, Loader] = {}


def register_model_type(name: str, loader: Loader) -> None:
    """Make ``open_model`` use ``loader(path, **kw)`` for models whose metadata says ``model_type = name``."""
    _LOADERS[name] = loader


def model_types() -> list[str]:
    return sorted(_LOADERS)


def model_type_of(path: str | Path) -> str:
    data = Path(path).read_bytes()
    flatbuf.check_tflite(data, str(path))
    meta = flatbuf.read_metadata(data) or {}
    return str(meta.get("model_type", "posenet"))


def open_model(path_or_name: str | Path, **kw: Any) -> Any:
    """Resolve a registry name or path, and open it with the loader of its model type."""
    from .. import relocalization  # noqa: F401  (registers its model type)
    from ..errors import ModelError
    from .zoo import resolve_model

    path = resolve_model(str(path_or_name))
    kind = model_type_of(path)
    if kind not in _LOADERS:
        raise ModelError(f"{path.name} is a '{kind}' model, which this edgepose cannot run (known: {', '.join(model_types())}).", "upgrade edgepose or use a PoseNet keypoint model.")
    return _LOADERS[kind](path, **kw)


def _load_posenet(path: Path, **kw: Any):
    from .posenet import load_posenet

    return load_posenet(path, **kw)


register_model_type("posenet", _load_posenet)
