"""A ring-buffer memory bank mapping appearance features to motion features (SCP positives).

The supplementary's section C: a dictionary from appearance features to motion features of the
target network, the K most recent samples kept, one bank per playback speed, top-1 lookup by dot
product. Our additions [D]: entries are L2-normalised and stored with their video id and their
source id (the source video a clip was cut from: UCF-101 group, HMDB-51 source, Kinetics
youtube_id); a search never returns an entry of the query's own source; enqueue wraps around for
any batch size.

Sync-free by construction: the pointer and the fill count depend only on the batch sizes, so the
bank keeps host-side mirrors of them (``num_filled``, ``_host_ptr``) and never reads its device
buffers during training; the mirrors are refreshed from the buffers once, when a state dict is
loaded. Enqueue writes at most two contiguous slices (no index kernels).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.utils.search import BANK_SEARCH_CHOICES, masked_top1, masked_top1_faiss

from .build import MEMORY_BANK_REGISTRY

__all__ = ["RingMemoryBank"]


@MEMORY_BANK_REGISTRY.register()
class RingMemoryBank(nn.Module):
    """The K most recent (appearance, motion, video id, source id) entries of one playback speed.

    Buffers (saved in checkpoints): ``appearance`` (K, d) and ``motion`` (K, d) L2-normalised
    float32, ``video_id`` and ``source_id`` (K,) int64 (-1 = empty), ``ptr`` (next slot) and
    ``fill`` (entries held), 0-d int64. Slots fill from 0 upwards, so the filled entries are rows
    ``[0, fill)``. A checkpoint written before source ids existed loads with ``source_id =
    video_id`` (each video its own source, which is what its searches excluded).

    Args:
        cfg: reads ``MEMORY_BANK.SIZE`` (K), ``MEMORY_BANK.SEARCH`` (auto | faiss | torch) and
            ``MEMORY_BANK.CHUNK_SIZE``.
        dim: feature dimension d.
    """

    def __init__(self, cfg: CfgNode, dim: int):
        super().__init__()
        size = int(cfg.MEMORY_BANK.SIZE)
        if size < 1 or dim < 1:
            raise ValueError(f"RingMemoryBank needs MEMORY_BANK.SIZE >= 1 and dim >= 1, got {size} and {dim}.")
        self.size = size
        self.dim = int(dim)
        self.search_backend = cfg.MEMORY_BANK.SEARCH
        if self.search_backend not in BANK_SEARCH_CHOICES:
            raise ValueError(f"MEMORY_BANK.SEARCH is {self.search_backend!r}; choose one of {list(BANK_SEARCH_CHOICES)}.")
        self.chunk_size = int(cfg.MEMORY_BANK.CHUNK_SIZE)
        self.register_buffer("appearance", torch.zeros(size, dim))
        self.register_buffer("motion", torch.zeros(size, dim))
        self.register_buffer("video_id", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("source_id", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("fill", torch.zeros((), dtype=torch.long))
        # Host mirrors of ptr and fill (see the module docstring).
        self._host_ptr = 0
        self.num_filled = 0

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}, search={self.search_backend}"

    def __len__(self) -> int:
        return self.num_filled

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + "source_id"
        if key not in state_dict and prefix + "video_id" in state_dict:
            # Written before source ids existed: its searches excluded the query's own video.
            state_dict[key] = state_dict[prefix + "video_id"].clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        self.refresh_host_state()

    def refresh_host_state(self) -> None:
        """Re-read the host mirrors of ``ptr`` and ``fill`` from the buffers (one host read).

        Called after a state dict is loaded; call it after writing the buffers any other way.
        """
        self._host_ptr, self.num_filled = int(self.ptr), int(self.fill)

    @torch.no_grad()
    def enqueue(self, appearance: torch.Tensor, motion: torch.Tensor, video_id: torch.Tensor,
                source_id: torch.Tensor = None) -> None:
        """Add a batch at the pointer, wrapping around; the oldest entries are overwritten.

        Equivalent to adding the rows one by one: with a batch larger than K only its last K rows
        stay, and ``ptr`` advances by the batch size modulo K. No host read.

        Args:
            appearance: (B, d) features (normalised here).
            motion: (B, d) features (normalised here).
            video_id: (B,) int64 video ids (>= 0).
            source_id: (B,) int64 source ids (>= 0); None = each video its own source.
        """
        b = appearance.shape[0]
        source_id = video_id if source_id is None else source_id
        if motion.shape[0] != b or video_id.shape[0] != b or source_id.shape[0] != b:
            raise ValueError(
                f"enqueue needs as many motion features, video ids and source ids as appearance "
                f"features; got {tuple(appearance.shape)}, {tuple(motion.shape)}, "
                f"{tuple(video_id.shape)}, {tuple(source_id.shape)}."
            )
        if b == 0:
            return
        dev = self.appearance.device
        kept = min(b, self.size)  # only the last K rows survive
        start = (self._host_ptr + b - kept) % self.size  # the slot of the first surviving row
        first = min(kept, self.size - start)  # rows written before the wrap-around
        rows = [
            F.normalize(appearance[b - kept:].detach().float(), dim=1).to(dev),
            F.normalize(motion[b - kept:].detach().float(), dim=1).to(dev),
            video_id[b - kept:].detach().long().to(dev),
            source_id[b - kept:].detach().long().to(dev),
        ]
        for buf, new in zip((self.appearance, self.motion, self.video_id, self.source_id), rows):
            buf[start:start + first] = new[:first]
            buf[:kept - first] = new[first:]
        self._host_ptr = (self._host_ptr + b) % self.size
        self.num_filled = min(self.num_filled + b, self.size)
        self.ptr.fill_(self._host_ptr)
        self.fill.fill_(self.num_filled)

    @torch.no_grad()
    def search(self, query: torch.Tensor, query_source: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Top-1 dot-product search over the filled entries of other sources, in float32.

        ``MEMORY_BANK.SEARCH`` auto picks torch everywhere. Measured (docs/benchmarks.md,
        "Memory-bank search", K=32768, d=256, CPU): torch is 3-5x cheaper than faiss.knn up to 256
        queries; faiss is 1.3-1.5x cheaper from 512 queries on only when single-threaded, and
        loses that lead with two threads on a shared machine. A bank is searched with one rank's
        batch per speed (<= 64 clips per GPU in the paper recipes), well inside torch's range,
        and the torch search makes no host read (the faiss one does).

        Args:
            query: (B, d) features (normalised by the caller for cosine scores).
            query_source: (B,) int64; entries of this source are never returned.

        Returns:
            (indices (B,) int64, scores (B,) float32) on the bank's device. A row with no valid
            entry (empty bank, or only its own source's entries) gets -1 and -inf: the caller
            falls back to another source of positives.
        """
        dev = self.appearance.device
        query = query.detach().to(dev).float()
        query_source = query_source.to(dev).long()
        n = self.num_filled
        if n == 0 or query.shape[0] == 0:
            b = query.shape[0]
            return (torch.full((b,), -1, dtype=torch.long, device=dev),
                    torch.full((b,), float("-inf"), device=dev))
        keys, key_source = self.appearance[:n], self.source_id[:n]
        if self.search_backend == "faiss":
            return masked_top1_faiss(query, query_source, keys, key_source, self.chunk_size)
        return masked_top1(query, query_source, keys, key_source, self.chunk_size)
