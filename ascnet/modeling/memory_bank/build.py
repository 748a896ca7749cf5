"""Memory-bank registry and builder."""
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.registry import Registry

MEMORY_BANK_REGISTRY = Registry("MEMORY_BANK")
MEMORY_BANK_REGISTRY.__doc__ = """
Registry for memory banks used to retrieve SCP positives.

A registered object is called as ``obj(cfg: CfgNode, dim: int) -> nn.Module``. The module keeps
its state (features, video ids, pointer, fill count) in buffers, so it is saved in checkpoints.
"""


def build_memory_bank(cfg: CfgNode, dim: int) -> nn.Module:
    """Build one bank of ``cfg.MEMORY_BANK.NAME`` holding ``dim``-d entries."""
    return MEMORY_BANK_REGISTRY.get(cfg.MEMORY_BANK.NAME)(cfg, dim)
