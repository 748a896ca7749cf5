"""Losses: ACP and SCP."""
from .build import LOSS_REGISTRY, build_loss  # noqa: F401
