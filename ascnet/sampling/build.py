"""Sampler registries: clip samplers (which frames of a video) and SCP positive samplers.

The two kinds have different call signatures, so each has its own registry.
"""
from fvcore.common.config import CfgNode

from ascnet.utils.registry import Registry

CLIP_SAMPLER_REGISTRY = Registry("CLIP_SAMPLER")
CLIP_SAMPLER_REGISTRY.__doc__ = """
Registry for clip samplers, called as ``obj(cfg: CfgNode, mode: str)`` with mode in
{"pretrain", "train", "test"}; the result maps a video's (num_frames, fps, generator) to one
tensor of native frame indices per clip it wants (see ascnet/sampling/clip.py). A test-mode
sampler exposes ``num_clips`` (clips per video). The sampler of each mode is named by
``DATA.CLIP_SAMPLER.<MODE>``.
"""

POSITIVE_SAMPLER_REGISTRY = Registry("POSITIVE_SAMPLER")
POSITIVE_SAMPLER_REGISTRY.__doc__ = """
Registry for SCP positive samplers, called as ``obj(cfg: CfgNode)``; the result is called as
``sampler(query, query_source, gallery, generator=None) -> Positives`` and picks, for each
query, the motion feature used as its SCP positive (never one of the query's own source) (see ascnet/sampling/positive.py). Named by
``ASCNET.POSITIVE_SAMPLER``.
"""

CLIP_SAMPLER_MODES = ("pretrain", "train", "test")


def build_clip_sampler(cfg: CfgNode, mode: str):
    """Build ``DATA.CLIP_SAMPLER.<MODE>`` for ``mode`` ("pretrain" | "train" | "test")."""
    if mode not in CLIP_SAMPLER_MODES:
        raise ValueError(f"Unknown sampling mode {mode!r}; choose one of {list(CLIP_SAMPLER_MODES)}.")
    return CLIP_SAMPLER_REGISTRY.get(cfg.DATA.CLIP_SAMPLER[mode.upper()])(cfg, mode)


def build_positive_sampler(cfg: CfgNode):
    """Build ``cfg.ASCNET.POSITIVE_SAMPLER`` (appearance_retrieval | random_same_speed)."""
    return POSITIVE_SAMPLER_REGISTRY.get(cfg.ASCNET.POSITIVE_SAMPLER)(cfg)
