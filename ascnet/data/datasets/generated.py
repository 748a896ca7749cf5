"""The generated motion dataset (``ascnet/data/synthetic.py``) as a registered dataset."""
from fvcore.common.config import CfgNode

from ..build import DATASET_REGISTRY
from ..synthetic import SyntheticSpec, ensure_synthetic_dataset
from .base import VideoDataset
from .ucf101 import UCF101


@DATASET_REGISTRY.register()
class Synthetic(UCF101):
    """Generated videos in the UCF-101 layout under ``DATA.PATH_TO_DATA_DIR``.

    When the folder holds no complete dataset and ``DATA.SYNTHETIC.AUTO_GENERATE`` is True, it
    is generated first (once; concurrent processes wait for the one that writes). Parameters
    come from ``DATA.SYNTHETIC.*``; the arguments are those of ``VideoDataset``.
    """

    def __init__(self, cfg: CfgNode, split: str, mode: str, **kwargs):
        if not cfg.DATA.PATH_TO_DATA_DIR:
            raise ValueError("Set DATA.PATH_TO_DATA_DIR to the folder of the generated dataset.")
        ensure_synthetic_dataset(
            cfg.DATA.PATH_TO_DATA_DIR, SyntheticSpec.from_cfg(cfg), auto_generate=cfg.DATA.SYNTHETIC.AUTO_GENERATE
        )
        super().__init__(cfg, split, mode, **kwargs)

    # Every generated video is rendered on its own (its own appearance and motion draws); the
    # UCF-style group in its name only assigns splits, so each video is its own source.
    source_of = VideoDataset.source_of
