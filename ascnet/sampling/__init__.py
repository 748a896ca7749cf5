"""Clip samplers and SCP positive samplers (one registry each)."""
from .build import (  # noqa: F401
    CLIP_SAMPLER_REGISTRY,
    POSITIVE_SAMPLER_REGISTRY,
    build_clip_sampler,
    build_positive_sampler,
)
from . import clip, positive  # noqa: F401,E402  (registers the clip and SCP positive samplers)
