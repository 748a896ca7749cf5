"""Data loaders: resumable distributed sampling, seeded workers, clip collation.

:func:`build_loader` is the one entry point of the engine. Training loaders use
:class:`ResumableDistributedSampler`, which yields ``(index, sample_seed)`` keys; the seed is a
function of ``(RNG_SEED, epoch, index)`` only, so the clips and augmentation of a sample do not
depend on the number of workers or processes, and a run resumed in the middle of an epoch
(``set_epoch(epoch, start_iter)``) continues with exactly the batches it would have seen.
Evaluation loaders use :class:`EvalDistributedSampler`: every video exactly once across
ranks, no padding duplicates.
"""
import logging
import math
import random
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from fvcore.common.config import CfgNode
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import default_collate

from ascnet.utils import distributed as du
from ascnet.utils.env import quiet_abandoned_handle_transfers, reset_child_signals

from .build import build_dataset
from .utils import AnnotationError, derive_seed

logger = logging.getLogger(__name__)


class ResumableDistributedSampler(Sampler):
    """A DistributedSampler that yields ``(index, sample_seed)`` and resumes mid-epoch.

    The epoch ordering is a permutation seeded by ``seed + epoch`` (identical on every rank),
    split across ranks like ``torch.utils.data.DistributedSampler`` (rank r takes positions
    r, r + R, ...). ``set_epoch(epoch, start_iter)`` skips the first ``start_iter`` batches of
    this rank's share, so after a mid-epoch resume iteration continues with the next batch.

    Args:
        dataset: the dataset (only its length is used).
        num_replicas: number of processes (default: the torch.distributed world size).
        rank: this process's rank (default: from torch.distributed).
        shuffle: permute the order each epoch.
        seed: base seed (``RNG_SEED``), same on all ranks.
        drop_last: drop the tail so every rank gets the same number of samples; otherwise the
            order is padded with its first indices (like DistributedSampler).
        batch_size: per-process batch size, used to convert ``start_iter`` into samples.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        batch_size: int = 1,
    ):
        world, r = du.get_world_size(), du.get_rank()
        self.num_replicas = int(num_replicas if num_replicas is not None else world)
        self.rank = int(rank if rank is not None else r)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} must be in [0, {self.num_replicas}).")
        self.dataset_len = len(dataset)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.batch_size = int(batch_size)
        if drop_last:
            self.num_samples = self.dataset_len // self.num_replicas
        else:
            self.num_samples = math.ceil(self.dataset_len / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.epoch = 0
        self.start_iter = 0

    def set_epoch(self, epoch: int, start_iter: int = 0) -> None:
        """Select the epoch's ordering and skip its first ``start_iter`` batches."""
        if start_iter < 0:
            raise ValueError(f"start_iter must be >= 0, got {start_iter}.")
        self.epoch = int(epoch)
        self.start_iter = int(start_iter)

    def epoch_indices(self) -> List[int]:
        """This rank's full index list for the current epoch (before skipping)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.dataset_len, generator=g).tolist()
        else:
            order = list(range(self.dataset_len))
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > len(order):
            pad = self.total_size - len(order)
            order += (order * math.ceil(pad / max(len(order), 1)))[:pad]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        skip = min(self.start_iter * self.batch_size, self.num_samples)
        for i in self.epoch_indices()[skip:]:
            yield i, derive_seed(self.seed, self.epoch, i)

    def __len__(self) -> int:
        return max(self.num_samples - self.start_iter * self.batch_size, 0)


class EvalDistributedSampler(Sampler):
    """Every index exactly once across ranks, in order; shards may differ by one.

    Rank r takes the contiguous block ``[r * N // R, (r + 1) * N // R)``. No padding, so no
    video is counted twice in evaluation metrics.
    """

    def __init__(self, dataset: Dataset, num_replicas: Optional[int] = None, rank: Optional[int] = None):
        world, r = du.get_world_size(), du.get_rank()
        self.num_replicas = int(num_replicas if num_replicas is not None else world)
        self.rank = int(rank if rank is not None else r)
        n = len(dataset)
        self.begin = self.rank * n // self.num_replicas
        self.end = (self.rank + 1) * n // self.num_replicas

    def set_epoch(self, epoch: int, start_iter: int = 0) -> None:
        """No-op (evaluation order does not depend on the epoch); kept for a uniform API."""

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.begin, self.end))

    def __len__(self) -> int:
        return self.end - self.begin


def collate_clips(batch: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack samples: ``clips`` -> (N, ...) (uint8, or float with ``AUG.DEVICE loader``);
    ``index``, ``label`` -> (N,) int64.

    Other keys (if a dataset adds any) go through torch's default collate.
    """
    out = {
        "clips": torch.stack([b["clips"] for b in batch]),
        "index": torch.tensor([int(b["index"]) for b in batch], dtype=torch.int64),
        "label": torch.tensor([int(b["label"]) for b in batch], dtype=torch.int64),
    }
    extra = [k for k in batch[0] if k not in out]
    for k in extra:
        out[k] = default_collate([b[k] for b in batch])
    return out


def worker_init_fn(worker_id: int) -> None:
    """Per worker: an empty signal mask, one torch thread, numpy / random seeded from torch's seed.

    The DataLoader seeds each worker's torch RNG with ``base_seed + worker_id``; the base seed
    comes from the loader's generator (seeded from ``RNG_SEED`` and the rank), so worker RNGs are
    reproducible. Samples themselves use their own per-sample seeds. The signal state is reset
    (``reset_child_signals``): a worker forked inside the trainer's ``defer_signals`` would
    otherwise keep SIGTERM blocked and never end at shutdown.
    """
    reset_child_signals()
    quiet_abandoned_handle_transfers()
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    cfg: CfgNode,
    split: str,
    mode: str,
    batch_size: Optional[int] = None,
    shuffle: Optional[bool] = None,
    drop_last: Optional[bool] = None,
    dataset: Optional[Dataset] = None,
) -> DataLoader:
    """Build the DataLoader of one split for this process.

    Args:
        cfg: the run config.
        split: "train" | "val" | "test".
        mode: "pretrain" | "train" (ResumableDistributedSampler, shuffled, drop_last) or "test"
            (EvalDistributedSampler: every video once, no drop).
        batch_size: GLOBAL batch size (default ``TRAIN.BATCH_SIZE`` for pretrain/train,
            ``TEST.BATCH_SIZE`` for test); each process gets ``batch_size // world_size``.
        shuffle: training loaders only (default True).
        drop_last: drop the last incomplete batch (training only, default True; an evaluation
            loader never drops).
        dataset: use this dataset instead of ``build_dataset(cfg, split, mode)`` (e.g. a
            test-mode dataset with retrieval's view counts).

    Returns:
        A DataLoader whose batches are the dataset's samples stacked (``AUG.DEVICE device``:
        ``{"clips": uint8 (N, S, T, H, W, C) (pretrain) / (N, T, H, W, C) (train) /
        (N, V, C, T, H, W) (test), "aug": dict of (N, [S,] ...) parameter tensors (training),
        "index": (N,) int64, "label": (N,) int64}``; the trainer augments them on its device;
        ``AUG.DEVICE loader``: float32 normalised (N, S, C, T, H, W) / (N, C, T, H, W) clips, no
        ``"aug"``). Its ``sampler`` has ``set_epoch``.
    """
    world, rank = du.get_world_size(), du.get_rank()
    training = mode in ("pretrain", "train")
    if dataset is None:
        dataset = build_dataset(cfg, split, mode)
    global_bs = int(batch_size if batch_size is not None else (cfg.TRAIN.BATCH_SIZE if training else cfg.TEST.BATCH_SIZE))
    if global_bs % world:
        raise ValueError(
            f"The global batch size {global_bs} must be divisible by the number of processes ({world})."
        )
    per_process = max(global_bs // world, 1)
    if training:
        drop = True if drop_last is None else drop_last
        sampler = ResumableDistributedSampler(
            dataset,
            num_replicas=world,
            rank=rank,
            shuffle=True if shuffle is None else shuffle,
            seed=cfg.RNG_SEED,
            drop_last=drop,
            batch_size=per_process,
        )
        if drop and sampler.num_samples < per_process:
            raise AnnotationError(
                f"The {split!r} split has {len(dataset)} videos: fewer than one batch of {per_process} per "
                f"process ({world} processes), so an epoch would have no iteration. Lower "
                "TRAIN.BATCH_SIZE or use more videos."
            )
    on_gpu = cfg.NUM_GPUS > 0 and torch.cuda.is_available()
    workers = int(cfg.DATA_LOADER.NUM_WORKERS)
    gen = torch.Generator()
    gen.manual_seed(derive_seed(cfg.RNG_SEED, rank, 0x10AD))
    if not training:
        if drop_last:
            raise ValueError("An evaluation loader (mode 'test') evaluates every video once: drop_last must be False.")
        return build_eval_loader(
            dataset,
            global_bs,
            num_workers=workers,
            pin_memory=bool(on_gpu and cfg.DATA_LOADER.PIN_MEMORY),
            persistent_workers=bool(on_gpu and workers > 0 and cfg.DATA_LOADER.PERSISTENT_WORKERS),
            generator=gen,
        )
    return DataLoader(
        dataset,
        batch_size=per_process,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=bool(on_gpu and cfg.DATA_LOADER.PIN_MEMORY),
        drop_last=drop,
        worker_init_fn=worker_init_fn,
        persistent_workers=bool(on_gpu and workers > 0 and cfg.DATA_LOADER.PERSISTENT_WORKERS),
        generator=gen,
    )


def build_eval_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    generator: Optional[torch.Generator] = None,
) -> DataLoader:
    """The evaluation DataLoader of this process, the one builder of evaluation loaders
    (:func:`build_loader` in mode ``"test"`` and
    :func:`ascnet.evaluation.inference.inference_on_dataset` call it).

    Every video once across processes: an :class:`EvalDistributedSampler` shard (no padding),
    no ``drop_last``, in index order.

    Args:
        dataset: map-style test-mode dataset.
        batch_size: GLOBAL videos per step; each process takes ``max(1, batch_size // world)``.
        num_workers: workers per process.
        pin_memory: pin the batches (GPU runs).
        persistent_workers: keep the workers between passes (needs ``num_workers > 0``).
        generator: the loader's generator (seeds the workers).

    Returns:
        A DataLoader of ``{"clips": (N, V, C, T, H, W), "index": (N,), "label": (N,)}``.
    """
    world, rank = du.get_world_size(), du.get_rank()
    return DataLoader(
        dataset,
        batch_size=max(1, int(batch_size) // world),
        sampler=EvalDistributedSampler(dataset, num_replicas=world, rank=rank),
        num_workers=int(num_workers),
        collate_fn=collate_clips,
        pin_memory=bool(pin_memory),
        drop_last=False,  # every video counts
        worker_init_fn=worker_init_fn,
        persistent_workers=bool(persistent_workers and num_workers > 0),
        generator=generator,
    )
