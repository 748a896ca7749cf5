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
