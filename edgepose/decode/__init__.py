"""PoseNet decoding: which multi-pose decoder runs.

Two implementations of the same algorithm (Coral's ``PosenetDecoderOp``):

* ``numba`` (:mod:`.compiled`): compiled at first use and cached on disk;
  tens of times faster; the default when numba imports;
* ``numpy`` (:mod:`.multi`): the reference, and the fallback when numba is
  missing (a board without its wheels) or turned off (``NUMBA_DISABLE_JIT=1``).

``EDGEPOSE_DECODER=auto|numba|numpy`` (environment) or ``decoder=`` of
:func:`select_decoder` chooses; ``auto`` takes numba when it imports.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from ..errors import ModelError
from .heads import Heads, QuantizedHeads
from .multi import DecodedPoses

log = logging.getLogger(__name__)

DECODER_ENV = "EDGEPOSE_DECODER"
DECODERS = ("auto", "numba", "numpy")

MultiPoseDecoder = Callable[..., DecodedPoses]


def _numba_decoder() -> tuple[MultiPoseDecoder | None, str]:
    """The compiled decoder, or None and why it cannot be used."""
    try:
        from . import compiled
    except Exception as e:  # ImportError (also NUMBA_DISABLE_JIT), or a numba/numpy version mismatch raising at import
        return None, f"{type(e).__name__}: {e}"
    return compiled.decode_multiple_poses, ""


def select_decoder(decoder: str | None = None) -> tuple[str, MultiPoseDecoder]:
    """``(name, decode_multiple_poses)`` for ``decoder`` (default: ``$EDGEPOSE_DECODER`` or ``auto``)."""
    want = (decoder or os.environ.get(DECODER_ENV) or "auto").strip().lower()
    if want not in DECODERS:
        raise ModelError(
            f"unknown decoder {want!r} ({DECODER_ENV} or decoder=).", f"use one of: {', '.join(DECODERS)}."
        )
    if want in ("auto", "numba"):
        fn, why = _numba_decoder()
        if fn is not None:
            return "numba", fn
        if want == "numba":
            raise ModelError(
                f"the numba decoder was asked for but numba does not load ({why}).",
                f"install numba (pip install numba) or set {DECODER_ENV}=numpy.",
            )
        log.info("numba does not load (%s): decoding with numpy (about 15x slower for a crowd)", why)
    from .multi import decode_multiple_poses

    return "numpy", decode_multiple_poses


def warm_up(name: str, dtype: str = "float32") -> None:
    """Compile or load the ``numba`` decoder for heads of ``dtype`` now (model load), so that no frame pays
    for it; logs what it cost."""
    if name != "numba":
        return
    from . import compiled

    seconds, how = compiled.warm_up(dtype)
    if how == "compiled":
        from ..paths import numba_cache_dir

        log.info(
            "numba decoder compiled in %.1f s (cached in %s: later starts load it in well under a second)",
            seconds,
            numba_cache_dir(),
        )
    elif how == "loaded from cache":
        log.info("numba decoder loaded from its cache in %.0f ms", 1e3 * seconds)


__all__ = ["DECODERS", "DECODER_ENV", "DecodedPoses", "Heads", "QuantizedHeads", "select_decoder", "warm_up"]
