"""Clip samplers and SCP positive samplers (one SAMPLER registry)."""
from .build import SAMPLER_REGISTRY, build_clip_sampler, build_positive_sampler  # noqa: F401
