"""torch.distributed helpers that also work when no process group exists.

Every function here is safe to call in a single process that never initialised
torch.distributed: it then behaves as the world of one process (rank 0, identity gathers).
"""
import os
from typing import Any, Dict, List, Sequence

import torch
import torch.distributed as dist
from torch import nn


def is_dist_avail_and_initialized() -> bool:
    """True when torch.distributed is available and a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine (``LOCAL_RANK``, set by the launcher; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on global rank 0 (the process that writes checkpoints, logs and metrics)."""
    return get_rank() == 0


def synchronize() -> None:
    """Barrier over all processes; a no-op when not distributed."""
    if get_world_size() > 1:
        if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def _comm_device(t: torch.Tensor) -> torch.device:
    # NCCL only moves CUDA tensors; gloo moves CPU tensors (and CUDA ones, through the host).
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return t.device


@torch.no_grad()
def all_gather_cat(t: torch.Tensor, equal_sizes: bool = False) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0, in rank order.

    Ranks may hold different numbers of rows (the gather pads to the largest and trims, after
    one exchange of the sizes and one host read of them), but the other dimensions and the dtype
    must agree. No gradient flows through the result.

    Args:
        t: (N_r, ...) tensor on this rank.
        equal_sizes: the caller guarantees that every rank holds the same number of rows (e.g.
            a training loader with ``drop_last``): no size exchange and no host read.

    Returns:
        (sum_r N_r, ...) tensor on ``t``'s device; ``t`` itself when not distributed.
    """
    world = get_world_size()
    if world == 1:
        return t
    dev = _comm_device(t)
    x = t.detach()
    x = x.to(dev).contiguous()
    if equal_sizes:
        out = torch.empty((world * x.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, device=dev)
        dist.all_gather_into_tensor(out, x)
        return out.to(t.device)
    n = torch.tensor([x.shape[0]], device=dev, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = torch.cat(sizes).tolist()  # one host read for all ranks' sizes
    max_n = max(sizes)
    if x.shape[0] < max_n:
        pad = x.new_zeros((max_n - x.shape[0],) + tuple(x.shape[1:]))
        x = torch.cat([x, pad], dim=0)
    out = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(out, x)
    return torch.cat([o[:s] for o, s in zip(out, sizes)], dim=0).to(t.device)


@torch.no_grad()
def all_gather_packed(tensors: Sequence[torch.Tensor], equal_sizes: bool = False) -> List[torch.Tensor]:
    """:func:`all_gather_cat` of several tensors with one collective.

    The tensors (the same number of rows N_r, any dtypes and trailing shapes) are viewed as
    bytes, packed side by side into one (N_r, bytes) uint8 tensor, gathered once and unpacked,
    so every value comes back bit-exact.

    Args:
        tensors: (N_r, ...) tensors on this rank, all on one device.
        equal_sizes: as in :func:`all_gather_cat`.

    Returns:
        The list of gathered (sum_r N_r, ...) tensors, in the order given; the inputs themselves
        when not distributed.
    """
    tensors = list(tensors)
    if get_world_size() == 1:
        return tensors
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"all_gather_packed needs tensors with the same number of rows; got {[tuple(t.shape) for t in tensors]}.")
    parts = [t.detach().contiguous().reshape(n, -1).view(torch.uint8) for t in tensors]
    packed = all_gather_cat(torch.cat(parts, dim=1), equal_sizes=equal_sizes)
    out, col = [], 0
    for t, p in zip(tensors, parts):
        width = p.shape[1]
        chunk = packed[:, col:col + width].contiguous().view(t.dtype)
        out.append(chunk.reshape((packed.shape[0],) + tuple(t.shape[1:])))
        col += width
    return out


@torch.no_grad()
def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Return the mean of ``t`` over all ranks (a new tensor; ``t`` when not distributed)."""
    world = get_world_size()
    if world == 1:
        return t
    dev = _comm_device(t)
    x = t.detach().to(dev, dtype=torch.float64 if t.dtype == torch.float64 else torch.float32).clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return (x / world).to(device=t.device, dtype=t.dtype if t.is_floating_point() else x.dtype)


def reduce_dict_mean(stats: Dict[str, float]) -> Dict[str, float]:
    """Average a dict of python floats over all ranks (one collective; identity alone)."""
    if get_world_size() == 1 or not stats:
        return dict(stats)
    keys = sorted(stats)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == dist.Backend.NCCL else "cpu"
    vals = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=dev)
    vals = all_reduce_mean(vals)
    return {k: float(v) for k, v in zip(keys, vals.tolist())}


def strip_ddp_key(key: str, wrappers: Sequence[str] = ("",)) -> str:
    """``key`` without the ``module.`` level that a DDP/DP wrapper adds to state-dict names.

    The one DDP-prefix stripper of ascnet (checkpoints, ASCNet's state-dict hooks, backbone
    weights).

    Args:
        key: a state-dict key, e.g. ``"module.online.module.backbone.w"``.
        wrappers: the name prefixes of the wrapped modules (``""`` = the model itself,
            ``"online."`` = its ``online`` child); a ``module.`` right after one is removed,
            repeatedly, so nested wrappers all go.

    Returns:
        The key as the unwrapped model names it, e.g. ``"online.backbone.w"``.
    """
    wrappers = sorted(wrappers, key=len, reverse=True)
    changed = True
    while changed:
        changed = False
        for p in wrappers:
            if key.startswith(p + "module."):
                key = p + key[len(p) + len("module."):]
                changed = True
    return key


def unwrap(model: Any) -> Any:
    """Return the module inside a DistributedDataParallel / DataParallel wrapper (else ``model``)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model
