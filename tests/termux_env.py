"""What a Termux install of edgepose has, reproduced on this machine (tests/test_termux.py).

Termux packages its own builds: python, python-numpy, python-scipy, python-pydantic-core, opencv-python and
python-tflite-runtime; numba and ai-edge-litert have no Android build. The closest reproducible set here is a
venv with tflite-runtime from PyPI (2.14, the last x86_64/aarch64 wheel: numpy < 2, Python <= 3.11), OpenCV's
headless wheel and the pure-Python dependencies the guide installs with pip, without numba and ai-edge-litert.
"""

from __future__ import annotations

TERMUX_REQUIREMENTS = [
    "tflite-runtime==2.14.0",
    "numpy<2",
    "opencv-python-headless>=4.8",
    "scipy>=1.9",
    "pydantic>=2.5,<3",
    "paho-mqtt>=2.0,<3",
    "platformdirs>=3",
    "tqdm>=4.60",
    "flatbuffers>=23.5",
    "prometheus-client>=0.17",
]
