"""The momentum teacher of BYOL-style methods (ASCNet, rho-BYOL): an online network trained by
gradients and a target network that follows it as an exponential moving average.

:class:`MomentumTeacher` is a :class:`~ascnet.modeling.protocol.PretrainModel` base that owns
both networks as the attributes ``online`` and ``target`` (checkpoint keys ``online.*`` and
``target.*``, with or without DDP), and everything about them that is not the method's loss:

* target construction: :meth:`OnlineNetwork.target_copy`, a gradient-free deep copy of the
  encoder and projections (the predictors are the online network's alone);
* the EMA schedule (``TEACHER.EMA_BASE``, the iteration k that just finished):
  ``tau_k = 1 - (1 - EMA_BASE) * (cos(pi * k / K) + 1) / 2`` (:func:`ema_momentum`);
* the BatchNorm policy [D]: ``TEACHER.BN_MODE`` "train" (default, as BYOL) normalises the
  target's input with its own batch statistics; "eval" with its running statistics. Either
  way the target's buffers are **copied** from the online network after every step rather
  than averaged: running statistics are already moving averages, and an EMA of them (tau close
  to 1) would lag the weights they belong to by thousands of steps;
* DDP: only ``online`` is wrapped (:meth:`MomentumTeacher.wrap_ddp`); the target, the
  iteration counter and whatever :meth:`MomentumTeacher.rank0_state` adds (ASCNet: its banks)
  are broadcast from rank 0, since processes seeded with ``RNG_SEED + rank`` initialise
  different targets;
* state-dict hooks that keep the keys free of DDP's ``module.`` level, so checkpoints and
  exact resume are the same with and without DDP; the ``iteration`` buffer (steps done) is
  saved with them.
"""
import copy
import math
from typing import Callable, Dict, List, Mapping, Tuple

import torch
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.distributed import strip_ddp_key, unwrap

from .protocol import PretrainModel

__all__ = ["MomentumTeacher", "OnlineNetwork", "TargetNetwork", "TEACHER_BN_MODES", "ema_momentum"]

# The values of TEACHER.BN_MODE (see the module docstring).
TEACHER_BN_MODES = ("train", "eval")


def ema_momentum(base: float, iteration: int, max_iter: int) -> float:
    """Cosine EMA schedule: ``1 - (1 - base) * (cos(pi * k / K) + 1) / 2``.

    Equals ``base`` at k = 0 and 1 at k = K (clamped to [0, K]).
    """
    k_max = max(int(max_iter), 1)
    k = min(max(int(iteration), 0), k_max)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / k_max) + 1.0) / 2.0


class TargetNetwork(nn.Module):
    """An encoder f and named projection heads g_i.

    ``forward(clips (B, C, T, H, W))`` returns ``(g_1(f(x)), g_2(f(x)), ...)``, each (B, d), in
    the order of ``projections``; each head is the attribute of its name (state-dict keys
    ``backbone.*``, ``<name>.*``).
    """

    def __init__(self, backbone: nn.Module, projections: Mapping[str, nn.Module]):
        super().__init__()
        self.backbone = backbone
        self.projection_names = list(projections)
        for name, head in projections.items():
            self.add_module(name, head)

    def forward(self, clips: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feat = self.backbone(clips)
        return tuple(getattr(self, n)(feat) for n in self.projection_names)


class OnlineNetwork(TargetNetwork):
    """f, the projections g_i and one predictor h_i per projection, in one module so that one
    forward uses every trained parameter (DDP).

    ``forward(clips (B, C, T, H, W))`` returns ``(h_1(g_1(f(x))), h_2(g_2(f(x))), ...)``, each
    (B, d).
    """

    def __init__(self, backbone: nn.Module, projections: Mapping[str, nn.Module], predictors: Mapping[str, nn.Module]):
        super().__init__(backbone, projections)
        if len(predictors) != len(projections):
            raise ValueError(f"One predictor per projection: got {list(predictors)} for {list(projections)}.")
        self.predictor_names = list(predictors)
        for name, head in predictors.items():
            self.add_module(name, head)

    def forward(self, clips: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feat = self.backbone(clips)
        return tuple(
            getattr(self, h)(getattr(self, g)(feat)) for g, h in zip(self.projection_names, self.predictor_names)
        )

    def target_copy(self) -> TargetNetwork:
        """A deep copy of f and the g_i (no predictors) with gradients off."""
        target = TargetNetwork(
            copy.deepcopy(self.backbone), {n: copy.deepcopy(getattr(self, n)) for n in self.projection_names}
        )
        for p in target.parameters():
            p.requires_grad_(False)
        return target


class MomentumTeacher(PretrainModel):
    """Base of models with an online network and its EMA target (see the module docstring).

    A subclass calls :meth:`init_teacher` in its ``__init__`` and may override
    :meth:`rank0_state`. It gets :meth:`after_step` (the EMA update), :meth:`wrap_ddp`,
    :attr:`online_module`, :attr:`backbone` (the online encoder) and the BN policy in
    :meth:`train`.
    """

    BACKBONE_PREFIXES = ("online.backbone.",)
    MODEL_DEFINING_KEYS = ("TEACHER.", "DATA.SPEEDS")

    def init_teacher(self, cfg: CfgNode, online: OnlineNetwork) -> None:
        """Set ``self.online = online`` and ``self.target`` = its gradient-free copy.

        Args:
            cfg: reads ``TEACHER.EMA_BASE`` and ``TEACHER.BN_MODE``.
            online: the online network (not DDP-wrapped yet).
        """
        self.online = online
        self.target = online.target_copy()
        self.ema_base = float(cfg.TEACHER.EMA_BASE)
        self.target_bn_mode = cfg.TEACHER.BN_MODE
        if self.target_bn_mode not in TEACHER_BN_MODES:
            raise ValueError(f"TEACHER.BN_MODE is {self.target_bn_mode!r}; choose one of {list(TEACHER_BN_MODES)}.")
        # Iterations completed (set by after_step); in the checkpoint, so an exact resume knows it.
        # Read through its host mirror (a device read would stall the GPU queue every step),
        # refreshed once whenever a state dict is loaded or rank 0's state is broadcast.
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self._host_iteration = 0
        self.register_load_state_dict_post_hook(_refresh_host_iteration)
        self.register_state_dict_post_hook(_strip_ddp_keys)
        self.register_load_state_dict_pre_hook(_add_ddp_keys)

    def train(self, mode: bool = True) -> "MomentumTeacher":
        super().train(mode)
        if hasattr(self, "target"):
            self.target.train(mode and self.target_bn_mode == "train")
        return self

    def rank0_state(self) -> List[torch.Tensor]:
        """Tensors besides the target's and ``iteration`` that every rank takes from rank 0
        when DDP wraps the online network (default: none)."""
        return []

    def wrap_ddp(self, fn: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the online network, e.g. ``fn = lambda m: DistributedDataParallel(m, ...)``.

        The target is never wrapped: it receives no gradients and every rank updates it from the
        same (all-reduced) online weights. DDP makes the online weights equal on every rank; the
        target, ``iteration`` and :meth:`rank0_state` are broadcast from rank 0 here (on resume
        every rank loaded the same checkpoint, so this changes nothing).
        """
        self.online = fn(self.online)
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        tensors = list(self.target.parameters()) + list(self.target.buffers()) + self.rank0_state()
        with torch.no_grad():
            for t in tensors + [self.iteration]:
                dist.broadcast(t.data, src=0)
        _refresh_host_iteration(self, None)

    @property
    def online_module(self) -> OnlineNetwork:
        """The online network without its DDP wrapper."""
        return unwrap(self.online)

    @property
    def backbone(self) -> nn.Module:
        """The online encoder f (what downstream tasks keep)."""
        return self.online_module.backbone

    @torch.no_grad()
    def after_step(self, iteration: int, max_iter: int) -> Dict[str, float]:
        """EMA update of the target after optimiser step ``iteration`` of ``max_iter``.

        ``xi <- tau * xi + (1 - tau) * theta`` for every target parameter, with tau from
        :func:`ema_momentum`; the target's buffers are copied from the online network.

        Returns:
            ``{"ema_tau": tau}``.
        """
        tau = ema_momentum(self.ema_base, iteration, max_iter)
        online = self.online_module
        online_params = dict(online.named_parameters())
        t_params, o_params = [], []
        for name, p in self.target.named_parameters():
            t_params.append(p)
            o_params.append(online_params[name].detach().to(p.dtype))
        if t_params:
            # lerp: xi + (1 - tau) * (theta - xi) = tau * xi + (1 - tau) * theta
            torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
        online_buffers = dict(online.named_buffers())
        for name, b in self.target.named_buffers():
            b.copy_(online_buffers[name])
        self._host_iteration = int(iteration) + 1
        self.iteration.fill_(self._host_iteration)
        return {"ema_tau": tau}


def _refresh_host_iteration(module, incompatible_keys) -> None:
    # The iteration buffer was just loaded or broadcast: refresh its host mirror (one read).
    module._host_iteration = int(module.iteration)


def _strip_ddp_keys(module, state_dict, prefix, local_metadata) -> None:
    # Checkpoints hold `online.backbone.*` whether or not the online network is wrapped by DDP.
    wrapped = prefix + "online.module."
    for key in [k for k in state_dict if k.startswith(wrapped)]:
        state_dict[strip_ddp_key(key, (prefix + "online.",))] = state_dict.pop(key)


def _add_ddp_keys(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    # Loading into a wrapped model: map `online.x` (or a legacy `online.module.x`) to the wrapper.
    if unwrap(module.online) is module.online:
        _strip_ddp_keys(module, state_dict, prefix, local_metadata)
        return
    plain, wrapped = prefix + "online.", prefix + "online.module."
    for key in [k for k in state_dict if k.startswith(plain) and not k.startswith(wrapped)]:
        state_dict[wrapped + key[len(plain):]] = state_dict.pop(key)
