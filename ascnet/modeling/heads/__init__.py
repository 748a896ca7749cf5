"""Heads: projection/predictor MLPs, linear classifier, identity."""
from .build import (  # noqa: F401
    HEAD_REGISTRY,
    build_cls_head,
    build_head,
    build_predictor,
    build_projection,
)
from . import heads  # noqa: F401,E402  (registers the built-in heads)
from .heads import IdentityHead, LinearHead, MLPHead  # noqa: F401,E402
