"""ACP and SCP losses (docs/method.md, section 1): the BYOL-style ``2 - 2 cos`` form.

For unit vectors ``||n(p) - n(z)||^2 = 2 - 2 cos(p, z)``; targets are always detached. Both
losses are per-clip means and are computed in float32 with autocast off (under bf16 autocast
the ACP einsum would otherwise run in bf16), and neither reads a tensor value on the host.
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
    with torch.autocast(pred.device.type, enabled=False):
        p = F.normalize(pred.float(), dim=-1)
        z = F.normalize(target.detach().float(), dim=-1)
        return 2.0 - 2.0 * (p * z).sum(dim=-1)


@LOSS_REGISTRY.register()
class ACPLoss(nn.Module):
    """Appearance consistency: pull each clip's prediction to the target of the other speeds.

    A per-clip mean [D]: clip i of video n contributes ``mean_{j != i} ||n(p_i) - n(z_j)||^2``,
    and the loss is the mean over the N * S clips. For two speeds that is
    ``L_ACP = mean_n [ ||n(p_1) - n(z_2)||^2 + ||n(p_2) - n(z_1)||^2 ] / 2``, half the
    per-video sum the method's formula writes (both directions summed, as BYOL's symmetric
    loss), so that L_ACP and L_SCP weigh each clip alike; ``ASCNET.ACP_WEIGHT`` 2.0 keeps the
    summed form's objective (docs/method.md). p = h_a(g_a(f(x))) (online), z = g_a'(f'(x))
    (target).

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
        with torch.autocast(pred.device.type, enabled=False):
            # d[n, i, j] = ||n(p_i) - n(z_j)||^2 for all pairs at once: (N, S, S).
            p = F.normalize(pred.float(), dim=-1)
            z = F.normalize(target.detach().float(), dim=-1)
            dist = 2.0 - 2.0 * torch.einsum("nid,njd->nij", p, z)
            # Every ordered pair i != j (a multiplicative mask: no boolean indexing, no sync).
            off_diag = 1.0 - torch.eye(s, dtype=dist.dtype, device=dist.device)
            per_clip = (dist * off_diag).sum(dim=2) / (s - 1)  # (N, S)
            return per_clip.mean()


@LOSS_REGISTRY.register()
class SCPLoss(nn.Module):
    """Speed consistency: ``L_SCP = mean over clips ||n(h_m(g_m(f(x)))) - n(m_pos)||^2``.

    m_pos is the retrieved motion feature (bank or batch), without gradient. Clips without a
    positive (``valid`` False) are left out of the mean, a masked mean with no host read; with
    none valid the loss is 0 and every parameter still takes part in the graph (DDP needs that).

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
        weight = valid.to(dist.dtype)  # on dist's device already: the caller's tensors
        return (dist * weight).sum() / weight.sum().clamp(min=1.0)
