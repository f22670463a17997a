"""The converter installs under a name of its own: ``edgepose_convert``, never a top-level ``convert``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_converter_is_edgepose_convert_and_nothing_is_called_convert(tmp_path):
    # Run outside the checkout, so only what is installed (editable or wheel) can be found.
    code = ("import importlib.util as u, json\n"
            "print(json.dumps([u.find_spec('edgepose_convert').origin, u.find_spec('edgepose_convert.relocalization.train') is not None,"
            " u.find_spec('convert') is None]))")
    origin, reloc, no_convert = json.loads(subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                                          check=True).stdout)
    assert reloc and no_convert
    origin = Path(origin)
    # Editable: the checkout's convert/ folder; wheel: site-packages/edgepose_convert.
    assert origin == REPO / "convert" / "__init__.py" or origin.parent.name == "edgepose_convert", origin
