"""Backbone registry and builder."""
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.registry import Registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Registry for video backbones (encoders f).

A registered object is called as ``obj(cfg: CfgNode) -> nn.Module``. The module takes a clip
batch of shape (N, C, T, H, W) and returns features of shape (N, D), and exposes
``out_dim: int`` (= D) so heads can be built without a dummy forward.
"""


def build_backbone(cfg: CfgNode) -> nn.Module:
    """Build ``cfg.MODEL.BACKBONE.NAME`` from BACKBONE_REGISTRY.

    Returns:
        nn.Module mapping (N, C, T, H, W) -> (N, out_dim).
    """
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
    if not isinstance(getattr(backbone, "out_dim", None), int):
        raise TypeError(
            f"Backbone {cfg.MODEL.BACKBONE.NAME!r} must expose an integer attribute `out_dim` "
            "(its feature dimension D); see docs/plugins.md."
        )
    return backbone
