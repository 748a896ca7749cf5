"""Video datasets, transforms and loaders. Importing this package registers the datasets."""
from .build import DATASET_REGISTRY, build_dataset  # noqa: F401
from . import datasets  # noqa: F401  (registers UCF101, HMDB51, Kinetics, SSv2, Synthetic)
from .loader import (  # noqa: F401
    EvalDistributedSampler,
    ResumableDistributedSampler,
    build_loader,
    collate_clips,
)
