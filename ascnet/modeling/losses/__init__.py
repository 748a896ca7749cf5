"""Losses: ACP and SCP."""
from .build import LOSS_REGISTRY, build_loss  # noqa: F401
from .consistency import ACPLoss, SCPLoss, normalized_mse  # noqa: F401
