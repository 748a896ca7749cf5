"""LARS: SGD with momentum and a layer-wise trust ratio (You et al., 2017).

torch.optim has no LARS and neither has fvcore, so it is written here (about 40 lines), in the
form used by SimCLR/BYOL: for each parameter p with gradient g,

    g <- g + weight_decay * p
    g <- g * eta * ||p|| / ||g||      (only when both norms are > 0 and the group adapts)
    v <- momentum * v + g
    p <- p - lr * v                    (nesterov: p <- p - lr * (g + momentum * v))

Parameter groups with ``lars_exclude=True`` (norm layers and biases, see
:func:`ascnet.solver.build.get_param_groups`) skip the trust ratio and weight decay.
"""
from typing import Iterable

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling on top of SGD with momentum.

    Args:
        params: parameters or parameter groups (a group may set ``lars_exclude``).
        lr: learning rate.
        momentum: momentum factor.
        weight_decay: L2 penalty (not applied to excluded groups' parameters when their
            group sets ``weight_decay`` 0, as :func:`build_optimizer` does).
        eta: trust coefficient.
        nesterov: Nesterov momentum.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, nesterov: bool = False):
        if lr <= 0:
            raise ValueError(f"LARS learning rate must be > 0, got {lr}.")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, nesterov=nesterov,
                        lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                if not group["lars_exclude"]:
                    p_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (p_norm > 0) & (g_norm > 0), group["eta"] * p_norm / g_norm, torch.ones_like(p_norm)
                    )
                    g = g.mul(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    buf.mul_(group["momentum"]).add_(g)
                update = g.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                p.add_(update, alpha=-group["lr"])
        return loss
