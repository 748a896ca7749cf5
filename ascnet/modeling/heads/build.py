"""Head registry and builders (projection, predictor, classification)."""
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.registry import Registry

HEAD_REGISTRY = Registry("HEAD")
HEAD_REGISTRY.__doc__ = """
Registry for heads put on top of a backbone's (N, D) features.

A registered object is called as ``obj(in_dim: int, out_dim: int, **kwargs) -> nn.Module``
(``hidden_dim`` for MLP heads, ``dropout_rate`` for classification heads). The module maps
(N, in_dim) -> (N, out_dim) and exposes ``out_dim``.
"""


def build_head(name: str, in_dim: int, out_dim: int, **kwargs) -> nn.Module:
    """Build the head ``name`` from HEAD_REGISTRY: (N, in_dim) -> (N, out_dim)."""
    return HEAD_REGISTRY.get(name)(in_dim=in_dim, out_dim=out_dim, **kwargs)


def build_projection(cfg: CfgNode, in_dim: int) -> nn.Module:
    """Projection g (appearance or speed): (N, in_dim) -> (N, MODEL.PROJECTION.OUT_DIM).

    Built from ``MODEL.PROJECTION.{NAME, HIDDEN_DIM, OUT_DIM}``.
    """
    p = cfg.MODEL.PROJECTION
    return build_head(p.NAME, in_dim, p.OUT_DIM, hidden_dim=p.HIDDEN_DIM)


def build_predictor(cfg: CfgNode) -> nn.Module:
    """Predictor h: (N, PROJECTION.OUT_DIM) -> (N, PROJECTION.OUT_DIM).

    Built from ``MODEL.PREDICTOR.{NAME, HIDDEN_DIM}``; input and output sizes are the
    projection's output size.
    """
    dim = cfg.MODEL.PROJECTION.OUT_DIM
    return build_head(cfg.MODEL.PREDICTOR.NAME, dim, dim, hidden_dim=cfg.MODEL.PREDICTOR.HIDDEN_DIM)


def build_cls_head(cfg: CfgNode, in_dim: int) -> nn.Module:
    """Classification head: (N, in_dim) -> (N, MODEL.NUM_CLASSES) logits.

    Built from ``MODEL.CLS_HEAD.{NAME, DROPOUT_RATE}``.
    """
    return build_head(
        cfg.MODEL.CLS_HEAD.NAME, in_dim, cfg.MODEL.NUM_CLASSES, dropout_rate=cfg.MODEL.CLS_HEAD.DROPOUT_RATE
    )
