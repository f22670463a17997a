"""Package layout only; everything else lives in pyproject.toml.

The converter's sources stay in ``convert/`` (the workstation half of the
project) but install as ``edgepose_convert``: a top-level package named
``convert`` would collide with anything else of that name in site-packages.
pyproject.toml's ``packages.find`` cannot rename a folder, hence this file.
The device image (Dockerfile.arm64) builds without ``convert/``.
"""

from pathlib import Path

from setuptools import find_packages, setup

CONVERT = "edgepose_convert"
HERE = Path(__file__).parent
packages = find_packages(include=["edgepose", "edgepose.*"])
package_dir = {}
if (HERE / "convert" / "__init__.py").is_file():
    packages += [CONVERT] + [f"{CONVERT}.{name}" for name in find_packages(str(HERE / "convert"))]
    package_dir[CONVERT] = "convert"

setup(packages=packages, package_dir=package_dir)
