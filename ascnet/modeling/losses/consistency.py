"""ACP and SCP losses (docs/method.md, section 1): the BYOL-style ``2 - 2 cos`` form.

For unit vectors ``||n(p) - n(z)||^2 = 2 - 2 cos(p, z)``; targets are always detached.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from fvcore.common.config import CfgNode
from torch import nn

from .build import LOSS_REGISTRY

__all__ = ["normalized_mse", "ACPLoss", "SCPLoss"]


def normalized_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row ``||n(pred) - n(target)||^2`` (= 2 - 2 cos), computed in float32.

    Args:
        pred: (..., d) online predictions (gradients flow).
        target: (..., d) targets (detached here).

    Returns:
        (...,) squared distances of the L2-normalised rows, in [0, 4].
    """
    p = F.normalize(pred.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    return 2.0 - 2.0 * (p * z).sum(dim=-1)


@LOSS_REGISTRY.register()
class ACPLoss(nn.Module):
    """Appearance consistency: pull each clip's prediction to the target of the other speeds.

    ``L_ACP = mean_n [ ||n(p_1) - n(z_2)||^2 + ||n(p_2) - n(z_1)||^2 ]`` for two speeds, with
    p = h_a(g_a(f(x))) (online) and z = g_a'(f'(x)) (target). For S > 2 speeds [D]: the same
    symmetric term summed over every pair of speeds and divided by the number of pairs
    S(S-1)/2, so the value keeps the two-speed scale.

    Args:
        cfg: unused (the registry's call signature).
    """

    def __init__(self, cfg: Optional[CfgNode] = None):
        super().__init__()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: (N, S, d) online appearance predictions, S >= 2 clips (speeds) per video.
            target: (N, S, d) target appearance projections (no gradient).

        Returns:
            Scalar loss.
        """
        if pred.ndim != 3 or pred.shape != target.shape or pred.shape[1] < 2:
            raise ValueError(
                f"ACPLoss needs pred and target of the same shape (N, S, d) with S >= 2 speeds; got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}."
            )
        s = pred.shape[1]
        # d[n, i, j] = ||n(p_i) - n(z_j)||^2 for all pairs at once: (N, S, S).
        p = F.normalize(pred.float(), dim=-1)
        z = F.normalize(target.detach().float(), dim=-1)
        dist = 2.0 - 2.0 * torch.einsum("nid,njd->nij", p, z)
        off_diag = ~torch.eye(s, dtype=torch.bool, device=pred.device)
        per_video = dist[:, off_diag].sum(dim=1)  # every ordered pair i != j
        return per_video.mean() / (s * (s - 1) / 2)


@LOSS_REGISTRY.register()
class SCPLoss(nn.Module):
    """Speed consistency: ``L_SCP = mean over clips ||n(h_m(g_m(f(x)))) - n(m_pos)||^2``.

    m_pos is the retrieved motion feature (bank or batch), without gradient. Clips without a
    positive (``valid`` False) are left out of the mean; with none valid the loss is
    ``0 * pred.sum()`` so every parameter still takes part in the graph (DDP needs that).

    Args:
        cfg: unused (the registry's call signature).
    """

    def __init__(self, cfg: Optional[CfgNode] = None):
        super().__init__()

    def forward(
        self, pred: torch.Tensor, positive: torch.Tensor, valid: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """
        Args:
            pred: (M, d) online motion predictions.
            positive: (M, d) positives (detached).
            valid: optional (M,) bool, True where the clip has a positive.

        Returns:
            Scalar loss.
        """
        if pred.shape != positive.shape or pred.ndim != 2:
            raise ValueError(
                f"SCPLoss needs pred and positive of the same shape (M, d); got "
                f"{tuple(pred.shape)} and {tuple(positive.shape)}."
            )
        dist = normalized_mse(pred, positive)
        if valid is None:
            return dist.mean()
        valid = valid.to(dist.device, torch.bool)
        if not bool(valid.any()):
            return 0.0 * pred.sum()
        return dist[valid].mean()
