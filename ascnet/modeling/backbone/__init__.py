"""Video backbones. Importing this package registers the built-in ones."""
from .build import BACKBONE_REGISTRY, build_backbone  # noqa: F401
