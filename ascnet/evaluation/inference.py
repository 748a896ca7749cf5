"""Run a function over every video of a dataset exactly once, in one or many processes.

Evaluation must count every video once: no ``drop_last``, and no padding of the per-rank
shards (``DistributedSampler`` pads the last shard by repeating videos, which would count
them twice). Each rank takes its block of videos from ``EvalDistributedSampler`` (no padding),
the per-rank outputs are gathered with their video indices, and the result is checked to hold
each index of ``range(len(dataset))`` exactly once and put in index order.
"""
import logging
from typing import Callable, Dict, Optional

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from ascnet.data.batch_augment import normalize_clips
from ascnet.data.loader import EvalDistributedSampler, collate_clips, worker_init_fn
from ascnet.utils import distributed as du

logger = logging.getLogger(__name__)


class EvaluationCountError(RuntimeError):
    """The gathered evaluation outputs do not cover each video exactly once."""


def _gather_objects(obj):
    world = du.get_world_size()
    if world == 1:
        return [obj]
    out = [None] * world
    # Object gather (pickled) rather than all_gather_cat: a rank may hold no video at all (more
    # ranks than videos), and then it cannot know the other dimensions of the outputs.
    dist.all_gather_object(out, obj)
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
    rank, world = du.get_rank(), du.get_world_size()
    device = device or torch.device("cpu")
    per_rank = max(1, batch_size // world)
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=EvalDistributedSampler(dataset, num_replicas=world, rank=rank),
        num_workers=num_workers,
        collate_fn=collate_clips,
        worker_init_fn=worker_init_fn,
        drop_last=False,  # every video counts
        pin_memory=device.type == "cuda",
    )
    outs: Dict[str, list] = {}
    for it, batch in enumerate(loader):
        batch = dict(batch)
        batch["clips"] = batch["clips"].to(device, non_blocking=True)
        if not batch["clips"].is_floating_point():
            batch["clips"] = normalize_clips(batch["clips"], _stats(dataset, "mean"), _stats(dataset, "std"))
        res = fn(batch)
        res = {k: v.detach().float().cpu() for k, v in res.items()}
        res["index"] = torch.as_tensor(batch["index"]).long().cpu()
        res["label"] = torch.as_tensor(batch["label"]).long().cpu()
        for k, v in res.items():
            outs.setdefault(k, []).append(v)
        if log_period and (it + 1) % log_period == 0:
            logger.info("evaluation: batch %d/%d", it + 1, len(loader))
    local = {k: torch.cat(v) for k, v in outs.items()}
    gathered = _gather_objects(local)
    keys = set()
    for g in gathered:
        keys.update(g)
    merged = {k: torch.cat([g[k] for g in gathered if k in g]) for k in keys}
    if "index" not in merged:
        merged["index"] = torch.zeros(0, dtype=torch.long)
    order = check_and_order(merged["index"], len(dataset))
    return {k: v[order] for k, v in merged.items()}
