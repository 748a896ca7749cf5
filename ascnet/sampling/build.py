"""Sampler registry: clip samplers (which frames of a video) and SCP positive samplers."""
from fvcore.common.config import CfgNode

from ascnet.utils.registry import Registry

SAMPLER_REGISTRY = Registry("SAMPLER")
SAMPLER_REGISTRY.__doc__ = """
Registry for samplers. Two kinds share it:

* clip samplers, called as ``obj(cfg: CfgNode, mode: str)`` with mode in
  {"pretrain", "train", "test"}; the result maps a video's (num_frames, fps, generator) to
  one tensor of native frame indices per clip it wants (see ascnet/sampling/clip.py);
* SCP positive samplers, called as ``obj(cfg: CfgNode)``; the result picks, for each query,
  the motion feature used as its SCP positive (see ascnet/sampling/positive.py).
"""


def build_clip_sampler(cfg: CfgNode, mode: str):
    """Build the clip sampler for ``mode`` ("pretrain" | "train" | "test")."""
    names = {"pretrain": "PlaybackSpeedSampler", "train": "RandomClipSampler", "test": "UniformMultiViewSampler"}
    if mode not in names:
        raise ValueError(f"Unknown sampling mode {mode!r}; choose one of {sorted(names)}.")
    return SAMPLER_REGISTRY.get(names[mode])(cfg, mode)


def build_positive_sampler(cfg: CfgNode):
    """Build ``cfg.ASCNET.POSITIVE_SAMPLER`` (appearance_retrieval | random_same_speed)."""
    return SAMPLER_REGISTRY.get(cfg.ASCNET.POSITIVE_SAMPLER)(cfg)
