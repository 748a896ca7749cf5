"""Video datasets, transforms and loaders. Importing this package registers the datasets."""
from .build import DATASET_REGISTRY, build_dataset  # noqa: F401
