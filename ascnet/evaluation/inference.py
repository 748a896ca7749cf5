"""Run a function over every video of a dataset exactly once, in one or many processes.

Evaluation must count every video once: no ``drop_last``, and no padding of the per-rank
shards (``DistributedSampler`` pads the last shard by repeating videos, which would count
them twice). Each rank takes its block of videos from ``EvalDistributedSampler`` (no padding),
the per-rank outputs are gathered as tensors with their video indices (:func:`gather_outputs`:
one ``all_gather`` per output, no pickling), and the result is checked to hold each index of
``range(len(dataset))`` exactly once and put in index order. A protocol that pools the views
of a video (retrieval: the mean of the L2-normalised clip features) pools in ``fn``, before
the gather, so only (N, D) travels; the cached linear probe gathers (N, V, D) because it trains
on the views.
"""
import logging
from typing import Callable, Dict, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from ascnet.data.batch_augment import normalize_clips
from ascnet.data.loader import build_eval_loader
from ascnet.utils import distributed as du

logger = logging.getLogger(__name__)


class EvaluationCountError(RuntimeError):
    """The gathered evaluation outputs do not cover each video exactly once."""


def shard_sizes(num_videos: int, world: int) -> list:
    """Videos per rank of :class:`~ascnet.data.loader.EvalDistributedSampler`: rank r holds the
    block ``[r * N // R, (r + 1) * N // R)``, so every rank knows every shard's size."""
    return [(r + 1) * num_videos // world - r * num_videos // world for r in range(world)]


# torch >= 2.14 names all_gather_into_tensor all_gather_single (the old name warns).
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
# Bytes gathered per collective. gloo gathers into a buffer of its own and copies out, so a
# one-shot gather of the whole result held one more full copy of it on every rank; chunks bound
# that copy (and the NCCL staging on the GPU) to this size.
GATHER_CHUNK_BYTES = 64 << 20


def _gather_rows(t: torch.Tensor, world: int, rows: int) -> torch.Tensor:
    """All ranks' (rows, ...) ``t`` as one (world * rows, ...) tensor in rank order, gathered in
    chunks of rows of at most :data:`GATHER_CHUNK_BYTES` (``rows`` is the same on every rank)."""
    dev = du._comm_device(t)
    shape = tuple(t.shape[1:])
    buf = torch.empty((world, rows) + shape, dtype=t.dtype, device=dev)
    row_bytes = max(1, t[:1].numel() * t.element_size() * world)
    step = max(1, GATHER_CHUNK_BYTES // row_bytes)
    for c in range(0, rows, step):
        part = t[c : c + step].to(dev).contiguous()
        tmp = torch.empty((world * part.shape[0],) + shape, dtype=t.dtype, device=dev)  # concatenated
        _all_gather_single(tmp, part)
        buf[:, c : c + step] = tmp.view((world, part.shape[0]) + shape)
    return buf.flatten(0, 1)


def gather_outputs(local: Dict[str, torch.Tensor], num_videos: int) -> Dict[str, torch.Tensor]:
    """Gather the per-rank outputs of an evaluation pass as tensors, in video-index order.

    Each rank's ``local`` tensors hold ``max(shard_sizes)`` rows (its shard first, zero padding
    after), so ``all_gather`` calls per key (chunks of rows, :func:`_gather_rows`) move them
    without a size exchange or pickling; only the keys, trailing shapes and dtypes travel as a
    small object, from the last rank (whose shard is never smaller than another's, so it has
    outputs whenever any rank has: a rank with no video cannot know them). The gathered indices
    are checked (each video exactly once).

    Args:
        local: ``{name: (max_rows, ...)}`` on this rank, including ``"index"`` (int64).
        num_videos: len(dataset).

    Returns:
        ``{name: (num_videos, ...)}`` on every rank, on the CPU.
    """
    world = du.get_world_size()
    sizes = shard_sizes(num_videos, world)
    if world > 1:
        meta = [{k: (tuple(v.shape[1:]), v.dtype) for k, v in local.items()}]
        dist.broadcast_object_list(meta, src=world - 1)
        rows = max(sizes)
        local = {k: local[k] if k in local else torch.zeros((rows,) + shape, dtype=dtype)
                 for k, (shape, dtype) in meta[0].items()}
    if "index" not in local:
        local["index"] = torch.zeros(0, dtype=torch.long)
    # Rows of the gathered (world * rows, ...) buffers that hold a video, in rank = index order.
    rows = local["index"].shape[0]
    valid = torch.cat([torch.arange(r * rows, r * rows + n) for r, n in enumerate(sizes)]) if world > 1 \
        else torch.arange(sizes[0])
    out: Dict[str, torch.Tensor] = {}
    for k in ["index"] + sorted(k for k in local if k != "index"):
        t = local[k]
        if world > 1:
            t = _gather_rows(t, world, rows)
        if k == "index":
            # Check, then fold the order (the identity: shards are contiguous blocks) into the rows
            # taken; when they are the first rows in order (one rank, or equal shards), take a view.
            valid = valid[check_and_order(t[valid.to(t.device)].cpu(), num_videos)]
            take = slice(0, valid.numel()) if torch.equal(valid, torch.arange(valid.numel())) else valid
        out[k] = t[take if isinstance(take, slice) else take.to(t.device)].cpu()
        del t
    return out


def check_and_order(indices: torch.Tensor, num_videos: int) -> torch.Tensor:
    """Return the permutation that sorts ``indices``, after checking each video appears once.

    Args:
        indices: (M,) int64 video indices gathered from all ranks.
        num_videos: len(dataset).

    Returns:
        (num_videos,) int64 positions into ``indices`` in video-index order.

    Raises:
        EvaluationCountError: a video is missing or was evaluated more than once.
    """
    counts = torch.bincount(indices, minlength=num_videos) if indices.numel() else torch.zeros(num_videos, dtype=torch.long)
    if counts.numel() != num_videos or (counts != 1).any():
        missing = (counts[:num_videos] == 0).nonzero().flatten()[:10].tolist()
        dup = (counts[:num_videos] > 1).nonzero().flatten()[:10].tolist()
        raise EvaluationCountError(
            f"Evaluation covered {indices.numel()} outputs for {num_videos} videos; missing "
            f"indices (first 10): {missing}, duplicated: {dup}, out of range: "
            f"{int((indices >= num_videos).sum())}. Every video must be evaluated exactly once: the "
            "evaluation loader must not drop or pad batches."
        )
    return torch.argsort(indices)


def _stats(dataset: Dataset, name: str):
    value = getattr(dataset, name, None)
    if value is None:
        raise ValueError(
            f"{type(dataset).__name__} returns uint8 clips but has no {name!r} attribute to normalise them "
            "with; give the dataset `mean` and `std` (DATA.MEAN / DATA.STD) or return float clips."
        )
    return value


@torch.no_grad()
def inference_on_dataset(
    fn: Callable[[Dict], Dict[str, torch.Tensor]],
    dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    device: Optional[torch.device] = None,
    log_period: int = 0,
) -> Dict[str, torch.Tensor]:
    """Apply ``fn`` to every video of ``dataset`` once, across all processes.

    Args:
        fn: maps a collated batch (``"clips"`` moved to ``device``; uint8 views are converted
            and normalised there with the dataset's ``mean`` / ``std``) to a dict of (B, ...)
            tensors (e.g. ``{"probs": (B, K)}``).
        dataset: map-style dataset; ``dataset[i]`` returns ``"clips"``, ``"index"``, ``"label"``.
        batch_size: global videos per step (split over the processes).
        num_workers: data-loader workers per process.
        device: where ``"clips"`` go (default CPU).
        log_period: log progress every this many batches (0 = never).

    Returns:
        On every rank: the outputs of ``fn`` gathered over all ranks, each (len(dataset), ...)
        in video-index order, plus ``"index"`` and ``"label"`` (len(dataset),) int64.
    """
    device = device or torch.device("cpu")
    loader = build_eval_loader(dataset, batch_size, num_workers=num_workers, pin_memory=device.type == "cuda")
    rows = max(shard_sizes(len(dataset), du.get_world_size()))
    # One (rows, ...) buffer per output, filled batch by batch: no list of batches to concatenate,
    # and already padded to the gather's size.
    local: Dict[str, torch.Tensor] = {}
    filled = 0
    for it, batch in enumerate(loader):
        batch = dict(batch)
        batch["clips"] = batch["clips"].to(device, non_blocking=True)
        if not batch["clips"].is_floating_point():
            batch["clips"] = normalize_clips(batch["clips"], _stats(dataset, "mean"), _stats(dataset, "std"))
        res = {k: v.detach().float() for k, v in fn(batch).items()}
        res["index"] = torch.as_tensor(batch["index"]).long()
        res["label"] = torch.as_tensor(batch["label"]).long()
        n = res["index"].shape[0]
        for k, v in res.items():
            if k not in local:
                local[k] = torch.zeros((rows,) + tuple(v.shape[1:]), dtype=v.dtype)
            local[k][filled : filled + n] = v
        filled += n
        if log_period and (it + 1) % log_period == 0:
            logger.info("evaluation: batch %d/%d", it + 1, len(loader))
    return gather_outputs(local, len(dataset))
