"""The converter installs under a name of its own: ``edgepose_convert``, never a top-level ``convert``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.integration
def test_converter_is_edgepose_convert_and_nothing_is_called_convert(tmp_path):
    # Run outside the checkout, so only what is installed (editable or wheel) can be found.
    code = (
        "import importlib.util as u, json\n"
        "print(json.dumps([u.find_spec('edgepose_convert').origin, u.find_spec('edgepose_convert.relocalization.train') is not None,"
        " u.find_spec('convert') is None]))"
    )
    origin, reloc, no_convert = json.loads(
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    )
    assert reloc and no_convert
    origin = Path(origin)
    # Editable: the checkout's convert/ folder; wheel: site-packages/edgepose_convert.
    assert origin == REPO / "convert" / "__init__.py" or origin.parent.name == "edgepose_convert", origin


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject.toml lists packages by hand (the converter's folder is renamed): a new folder must be listed."""
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "edgepose").rglob("__init__.py")}
    folders |= {
        ".".join(("edgepose_convert", *p.parent.relative_to(REPO / "convert").parts))
        for p in (REPO / "convert").rglob("__init__.py")
    }
    assert setuptools["package-dir"] == {"edgepose_convert": "convert"}
    assert folders == listed, (
        f"missing from pyproject: {sorted(folders - listed)}; listed but absent: {sorted(listed - folders)}"
    )
    assert not (REPO / "setup.py").exists()  # the top level stays as designed: packaging lives in pyproject.toml


@pytest.mark.integration
def test_wheel_holds_every_package_and_the_static_files(tmp_path):
    import zipfile

    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("edgepose-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("edgepose-")}
    assert tops == {"edgepose", "edgepose_convert"}, tops
    for needed in (
        "edgepose/web/static/device.js",
        "edgepose/schemas/frame.schema.json",
        "edgepose/provision/bundle.py",
        "edgepose_convert/relocalization/train.py",
    ):
        assert needed in names, needed
