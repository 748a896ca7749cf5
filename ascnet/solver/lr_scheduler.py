"""Per-iteration learning-rate schedule: linear warm-up, then cosine (or constant).

For iteration k of ``total`` (warm-up ``w`` iterations), the factor applied to the peak lr is

    k < w:   start + (1 - start) * k / w                        (start = WARMUP_START_FACTOR)
    k >= w:  cosine: end + (1 - end) * (1 + cos(pi * (k - w) / (total - w))) / 2
             constant: 1
    (end = COSINE_END_LR_RATIO)

It is a ``LambdaLR``: its state (``last_epoch`` = iterations stepped) is checkpointed by torch's
own ``state_dict`` (plain types, loads with ``weights_only=True``); the schedule itself is rebuilt
from the config, so a run resumed with a longer ``SOLVER.MAX_EPOCH`` follows the new length.
"""
import math

import torch
from fvcore.common.config import CfgNode


# The values of SOLVER.LR_POLICY (the config check reads them from here).
LR_POLICIES = ("cosine", "constant")


class WarmupCosineFactor:
    """The lr factor as a function of the iteration (see the module docstring)."""

    def __init__(self, total_iters: int, warmup_iters: int, warmup_start: float, end_ratio: float, policy: str):
        if policy not in LR_POLICIES:
            raise ValueError(f"SOLVER.LR_POLICY is {policy!r}; choose one of {list(LR_POLICIES)}.")
        self.total = max(int(total_iters), 1)
        self.warmup = min(max(int(warmup_iters), 0), self.total)
        self.start = float(warmup_start)
        self.end = float(end_ratio)
        self.policy = policy

    def __call__(self, k: int) -> float:
        if k < self.warmup:
            return self.start + (1.0 - self.start) * k / self.warmup
        if self.policy == "constant":
            return 1.0
        span = max(self.total - self.warmup, 1)
        progress = min((k - self.warmup) / span, 1.0)
        return self.end + (1.0 - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def total_iterations(cfg: CfgNode, iters_per_epoch: int) -> int:
    """Length of the run in iterations: ``MAX_EPOCH`` epochs, capped by ``TRAIN.MAX_ITERS``."""
    total = cfg.SOLVER.MAX_EPOCH * iters_per_epoch
    if cfg.TRAIN.MAX_ITERS > 0:
        total = min(total, cfg.TRAIN.MAX_ITERS)
    return total


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
    """A per-iteration ``LambdaLR``: warm-up for ``WARMUP_EPOCHS`` then ``LR_POLICY``.

    The schedule spans the run's actual length (:func:`total_iterations`), so a run capped by
    ``TRAIN.MAX_ITERS`` still decays to its end value. Call ``scheduler.step()`` after every
    optimiser step.

    Args:
        cfg: uses ``SOLVER.*`` and ``TRAIN.MAX_ITERS``.
        optimizer: whose groups' current lr is the peak lr.
        iters_per_epoch: optimiser steps per epoch (``len(train_loader)``).
    """
    if iters_per_epoch < 1:
        raise ValueError(
            f"iters_per_epoch is {iters_per_epoch}: the training loader yields no batch. The dataset "
            "is smaller than one global batch (TRAIN.BATCH_SIZE) or empty."
        )
    factor = WarmupCosineFactor(
        total_iters=total_iterations(cfg, iters_per_epoch),
        warmup_iters=round(cfg.SOLVER.WARMUP_EPOCHS * iters_per_epoch),
        warmup_start=cfg.SOLVER.WARMUP_START_FACTOR,
        end_ratio=cfg.SOLVER.COSINE_END_LR_RATIO,
        policy=cfg.SOLVER.LR_POLICY,
    )
    # Wrapped in a plain function: LambdaLR then saves only its step count, not the factor's
    # attributes, so a resumed run follows the config it is started with (e.g. more epochs).
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: factor(k))
