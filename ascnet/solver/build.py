"""Optimiser construction: SGD or LARS, no weight decay on norm layers and biases.

The peak learning rate follows the linear scaling rule:
``lr = SOLVER.BASE_LR * TRAIN.BATCH_SIZE / SOLVER.BASE_BATCH_SIZE`` (global batch sizes).
"""
import logging
from typing import Any, Dict, List

import torch
from fvcore.common.config import CfgNode
from torch import nn

from .lars import LARS

logger = logging.getLogger(__name__)

# Parameters of these layers get no weight decay (and no LARS adaptation).
NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


# The values of SOLVER.OPTIMIZING_METHOD (the config check reads them from here).
OPTIMIZERS = ("sgd", "lars", "adamw")


def scaled_lr(cfg: CfgNode) -> float:
    """``BASE_LR * TRAIN.BATCH_SIZE / BASE_BATCH_SIZE`` (linear scaling rule)."""
    return cfg.SOLVER.BASE_LR * cfg.TRAIN.BATCH_SIZE / cfg.SOLVER.BASE_BATCH_SIZE


def get_param_groups(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Split trainable parameters into a decayed group and a non-decayed one.

    Non-decayed: every parameter of a normalisation layer and every parameter with one
    dimension or fewer (biases, scales). Frozen parameters (``requires_grad=False``) are left
    out, so a linear-protocol classifier only optimises its head.

    Returns:
        Up to two groups; the non-decayed one has ``weight_decay=0`` and ``lars_exclude=True``.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for _, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(module, NORM_TYPES) or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "lars_exclude": False})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True})
    return groups


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """Build ``SOLVER.OPTIMIZING_METHOD`` ("sgd" | "lars" | "adamw") over the model's trainable parameters.

    Args:
        cfg: uses ``SOLVER.*`` and ``TRAIN.BATCH_SIZE``.
        model: the (unwrapped or DDP-wrapped) model.

    Raises:
        ValueError: the model has no trainable parameter.
    """
    groups = get_param_groups(model, cfg.SOLVER.WEIGHT_DECAY)
    if not groups:
        raise ValueError(
            "The model has no parameter with requires_grad=True: nothing to optimise. "
            "Check which parts of the model are frozen."
        )
    lr = scaled_lr(cfg)
    method = cfg.SOLVER.OPTIMIZING_METHOD
    if method != "lars":  # a key only LARS reads
        for g in groups:
            g.pop("lars_exclude")
    if method == "sgd":
        opt = torch.optim.SGD(
            groups, lr=lr, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
    elif method == "lars":
        opt = LARS(
            groups, lr=lr, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY, eta=cfg.SOLVER.LARS_ETA,
        )
    elif method == "adamw":
        # torch's AdamW (decoupled weight decay, default betas; MOMENTUM and NESTEROV unused). From
        # random init on classes only motion tells, SGD stays at chance for hundreds of iterations
        # where AdamW learns (docs/benchmarks.md, "Motion benchmark").
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    else:
        raise ValueError(f"SOLVER.OPTIMIZING_METHOD is {method!r}; choose one of {list(OPTIMIZERS)}.")
    n = sum(p.numel() for g in groups for p in g["params"])
    logger.info("Optimiser %s, peak lr %.5g, %d trainable parameters in %d groups", method, lr, n, len(groups))
    return opt
