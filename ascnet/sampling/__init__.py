"""Clip samplers and SCP positive samplers (one SAMPLER registry)."""
from .build import SAMPLER_REGISTRY, build_clip_sampler, build_positive_sampler  # noqa: F401
from . import clip, positive  # noqa: F401,E402  (registers the clip and SCP positive samplers)
