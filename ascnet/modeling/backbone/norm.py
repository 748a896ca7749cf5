"""Normalisation layers selected by ``MODEL.BACKBONE.NORM``.

Every builder here follows pytorchvideo's norm contract ``norm(num_features=C, eps=..,
momentum=..) -> nn.Module`` so it can be handed to pytorchvideo's ``create_res_block`` and to
our own ``create_*`` builders.
"""
import math
from typing import Callable, Optional

from torch import nn

# Largest group count used by "groupnorm" (the group count is gcd(GROUPNORM_MAX_GROUPS, C) so
# that any channel count works, including the tiny widths of test configs).
GROUPNORM_MAX_GROUPS = 32


def _group_norm(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    """GroupNorm with the BatchNorm call signature (``momentum`` is unused)."""
    del momentum
    return nn.GroupNorm(math.gcd(GROUPNORM_MAX_GROUPS, num_features), num_features, eps=eps)


def _sync_batch_norm(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return nn.SyncBatchNorm(num_features, eps=eps, momentum=momentum)


_NORMS = {
    "batchnorm": nn.BatchNorm3d,
    # Synchronised over the DDP process group; GPU only (torch refuses it on CPU modules).
    "syncbatchnorm": _sync_batch_norm,
    "groupnorm": _group_norm,
    "none": None,
}


def get_norm(name: str) -> Optional[Callable[..., nn.Module]]:
    """Return the norm builder called ``name`` (None for "none").

    Args:
        name: one of "batchnorm", "syncbatchnorm", "groupnorm", "none" (case-insensitive).

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    key = str(name).lower()
    if key not in _NORMS:
        raise ValueError(
            f"MODEL.BACKBONE.NORM is {name!r}; choose one of {sorted(_NORMS)}."
        )
    return _NORMS[key]

