"""Heads: projection/predictor MLPs, linear classifier, identity."""
from .build import HEAD_REGISTRY, build_head  # noqa: F401
