"""Optimisers and learning-rate schedules."""
from .build import build_optimizer, get_param_groups, scaled_lr  # noqa: F401
from .lars import LARS  # noqa: F401
from .lr_scheduler import build_lr_scheduler, total_iterations  # noqa: F401
