"""Pieces of the training step that :class:`ascnet.engine.trainer.Trainer` uses: the per-step
statistics kept on the device, the channels_last_3d layout of ``MODEL.CHANNELS_LAST`` and the
backbone compilation of ``MODEL.COMPILE``.

Statistics: every value a step computes on the device (losses, the model's scalar outputs,
the gradient norm) stays there; :class:`StepStatistics` stacks each step's values into one
(K,) tensor on the device and :meth:`StepStatistics.read` brings every queued step to the host
in one copy, so a step itself makes no host synchronisation on a GPU and the trainer pays one
per ``LOG_PERIOD``. The NaN/Inf check of the losses runs on that copy.
"""
import logging
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ascnet.utils import distributed as du

logger = logging.getLogger(__name__)

Record = Tuple[int, int, Dict[str, float]]  # (iteration, epoch, {name: value})


def is_scalar(v: Any) -> bool:
    """A statistic the trainer logs: a one-element tensor or a number (not a bool)."""
    if isinstance(v, torch.Tensor):
        return v.numel() == 1
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def losses_finite(stats: Dict[str, float]) -> bool:
    """True when every ``loss*`` entry of ``stats`` is finite."""
    return all(math.isfinite(v) for k, v in stats.items() if k.startswith("loss"))


class StepStatistics:
    """The statistics of the steps since the last read, on the device.

    Args:
        device: the training device (the queued (K,) tensors live there).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._pending: List[Tuple[int, int, List[str], Optional[torch.Tensor], Dict[str, float]]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def queue(self, iteration: int, epoch: int, stats: Dict[str, Any]) -> None:
        """Queue one step's statistics: tensors stacked on the device (no transfer), numbers
        kept as floats."""
        host = {k: float(v) for k, v in stats.items() if not isinstance(v, torch.Tensor)}
        names = [k for k, v in stats.items() if isinstance(v, torch.Tensor)]
        tensors = [stats[k].detach().float().reshape(()) for k in names]
        tensors = [t.to(self.device) for t in tensors]
        self._pending.append((iteration, epoch, names, torch.stack(tensors) if names else None, host))

    def read(self) -> List[Record]:
        """Every queued step as ``(iteration, epoch, {name: float})``, with one device-to-host
        copy; the queue is kept."""
        tensors = [v for _, _, _, v, _ in self._pending if v is not None]
        flat = torch.cat(tensors).cpu().tolist() if tensors else []
        records, at = [], 0
        for it, epoch, names, _, host in self._pending:
            rec = dict(host)
            rec.update(zip(names, flat[at : at + len(names)]))
            at += len(names)
            records.append((it, epoch, rec))
        return records

    def flush(self) -> Tuple[List[Record], Optional[int]]:
        """:meth:`read` and empty the queue, and find the first step whose losses are NaN/Inf
        on any rank (one all-reduce of one flag per queued step when distributed: every rank
        flushes at the same iterations).

        Returns:
            The records and the index of the first bad one (None when all are finite).
        """
        records, self._pending = self.read(), []
        bad = [not losses_finite(rec) for _, _, rec in records]
        if du.get_world_size() > 1:
            dev = self.device if self.device.type == "cuda" else torch.device("cpu")
            flags = torch.tensor([1.0 if b else 0.0 for b in bad] or [0.0], device=dev)
            bad = [v > 0 for v in du.all_reduce_mean(flags).tolist()][: len(records)]
        return records, next((i for i, b in enumerate(bad) if b), None)


def to_channels_last(model: nn.Module) -> nn.Module:
    """``MODEL.CHANNELS_LAST``: every 5-D parameter and buffer of ``model`` (the 3-D conv
    weights) in the channels_last_3d layout, in place; other tensors unchanged (``Module.to``
    would refuse a 4-D weight). Values, names and checkpoints are unchanged."""
    fmt = torch.channels_last_3d
    return model._apply(lambda t: t.contiguous(memory_format=fmt) if t.dim() == 5 else t)


def channels_last_clips(clips: torch.Tensor) -> torch.Tensor:
    """Clips (..., C, T, H, W) -> the same values with C innermost in memory, so that every
    (C, T, H, W) clip, also after flattening the leading dims, is channels_last_3d."""
    if clips.dim() < 5:
        return clips
    return clips.movedim(-4, -1).contiguous().movedim(-1, -4)


def compile_backbones(model: nn.Module) -> List[str]:
    """``torch.compile`` every backbone of ``model`` in place; returns their names.

    The backbones are the submodules held under the name ``backbone`` (ASCNet's online and
    target encoders, a classifier's encoder, a plugin model's), outermost only; they run most of
    a step's compute. ``nn.Module.compile()`` keeps the module object, so parameter names,
    state-dict keys, checkpoints and exact resume are those of the eager model. Call it before
    wrapping the model for DDP.
    """
    done: List[str] = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] == "backbone" and not any(name.startswith(d + ".") for d in done):
            module.compile()
            done.append(name)
    if done:
        logger.info("MODEL.COMPILE: compiled %s.", ", ".join(done))
    else:
        logger.warning("MODEL.COMPILE: %s holds no module named 'backbone'; nothing compiled.", type(model).__name__)
    return done


__all__ = [
    "StepStatistics", "channels_last_clips", "compile_backbones", "is_scalar", "losses_finite", "to_channels_last",
]
