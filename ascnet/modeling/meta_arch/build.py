"""Meta-architecture registry and builder."""
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.registry import Registry

MODEL_REGISTRY = Registry("MODEL")
MODEL_REGISTRY.__doc__ = """
Registry for meta-architectures (ASCNet, Classifier, ...): whole models built from the other
registries.

A registered object is called as ``obj(cfg: CfgNode) -> nn.Module``. Its ``forward(batch)``
takes the collated batch dict of the data loader and returns a dict; in training mode every
entry whose name starts with ``loss`` is a weighted scalar loss that the trainer sums.
"""


def build_model(cfg: CfgNode) -> nn.Module:
    """Build ``cfg.MODEL.META_ARCH`` from MODEL_REGISTRY (on CPU; the trainer moves it)."""
    return MODEL_REGISTRY.get(cfg.MODEL.META_ARCH)(cfg)
