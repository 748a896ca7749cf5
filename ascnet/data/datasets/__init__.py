"""Registered video datasets (importing this package registers them)."""
from .base import DataFailureError, VideoDataset  # noqa: F401
from .ucf101 import UCF101  # noqa: F401
from .hmdb51 import HMDB51  # noqa: F401
from .kinetics import Kinetics  # noqa: F401
from .generated import Synthetic  # noqa: F401
from .ssv2 import SSv2  # noqa: F401
