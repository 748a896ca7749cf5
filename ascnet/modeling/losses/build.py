"""Loss registry and builder."""
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.registry import Registry

LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = """
Registry for losses.

A registered object is called as ``obj(cfg: CfgNode) -> nn.Module``; the module's forward
signature is the loss's own (documented on the class) and returns a scalar tensor.
"""


def build_loss(cfg: CfgNode, name: str) -> nn.Module:
    """Build the loss ``name`` from LOSS_REGISTRY."""
    return LOSS_REGISTRY.get(name)(cfg)
