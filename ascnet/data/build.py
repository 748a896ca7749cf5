"""Dataset registry and builders."""
from fvcore.common.config import CfgNode
from torch.utils.data import Dataset

from ascnet.utils.registry import Registry

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
Registry for video datasets (map-style).

A registered object is called as ``obj(cfg: CfgNode, split: str, mode: str) -> Dataset`` with
split in {"train", "val", "test"} and mode in {"pretrain", "train", "test"}. ``dataset[i]`` or
``dataset[(i, seed)]`` (the seed drives every random choice of the sample) returns a dict with
``"clips"``, a **uint8** tensor: (S, T, H, W, C) in pretrain mode, S = ``len(DATA.SPEEDS)``
clips of one video, channels last; (T, H, W, C) in train mode; (V, C, T, H, W) in test mode, V
deterministic views; ``"aug"`` in pretrain and train mode, the augmentation parameters of each
clip (a dict of (S, ...) / (...) tensors, ``ascnet.data.batch_augment.stack_params``), which the
trainer applies to the batch on its device; ``"index"`` (the video index, an int; that of the
replacement when a bad video was replaced) and ``"label"`` (an int, -1 when unknown). Float
clips reaching the batch augmentation are an error naming the dataset class; a dataset that
augments and normalises its clips itself (float (S, C, T, H, W) at ``DATA.CROP_SIZE``, no
``"aug"``) runs with ``AUG.DEVICE loader``. docs/plugins.md shows a minimal dataset. Samples
may also carry ``"source"`` (an int, the source video: clips cut from one source are never each
other's SCP positive; without it each video is its own source). The dataset also exposes
``num_classes``, ``labels`` (ints), ``paths`` (str), ``sources`` (ints), indexable like lists
(the built-in datasets keep them packed in shared numpy buffers), ``class_names`` and
``failure_stats()``. The built-in datasets derive
from ``ascnet.data.datasets.VideoDataset`` (a new layout only implements ``_load_index``);
see docs/data.md.
"""


def build_dataset(cfg: CfgNode, split: str, mode: str, name: str = "") -> Dataset:
    """Build a dataset from DATASET_REGISTRY (``name`` defaults to TRAIN/TEST.DATASET)."""
    if not name:
        name = cfg.TRAIN.DATASET if mode in ("pretrain", "train") else cfg.TEST.DATASET
    return DATASET_REGISTRY.get(name)(cfg, split, mode)
