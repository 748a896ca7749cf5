"""Optimisers and learning-rate schedules."""
__all__ = ["build_optimizer", "get_param_groups", "scaled_lr", "LARS", "build_lr_scheduler", "total_iterations"]

from .build import build_optimizer, get_param_groups, scaled_lr  # noqa: F401
from .lars import LARS  # noqa: F401
from .lr_scheduler import build_lr_scheduler, total_iterations  # noqa: F401
