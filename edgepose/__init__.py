"""edgepose: PoseNet on small devices (runtime side; no TensorFlow needed)."""

from .errors import EdgeposeError
from .types import KEYPOINT_NAMES, FrameResult, Keypoint, Pose

__version__ = "0.1.0"
__all__ = ["EdgeposeError", "FrameResult", "KEYPOINT_NAMES", "Keypoint", "Pose", "__version__"]
