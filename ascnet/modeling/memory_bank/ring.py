"""A ring-buffer memory bank mapping appearance features to motion features (SCP positives).

The supplementary's section C: a dictionary from appearance features to motion features of the
target network, the K most recent samples kept, one bank per playback speed, top-1 lookup by dot
product. Our additions [D]: entries are L2-normalised and stored with their video id; a search
never returns an entry of the query's own video; enqueue wraps around for any batch size.
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
    """The K most recent (appearance, motion, video id) triples of one playback speed.

    Buffers (saved in checkpoints): ``appearance`` (K, d) and ``motion`` (K, d) L2-normalised
    float32, ``video_id`` (K,) int64 (-1 = empty), ``ptr`` (next slot) and ``fill`` (entries
    held), 0-d int64. Slots fill from 0 upwards, so the filled entries are rows ``[0, fill)``.

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
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("fill", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}, search={self.search_backend}"

    def __len__(self) -> int:
        return int(self.fill)

    @torch.no_grad()
    def enqueue(self, appearance: torch.Tensor, motion: torch.Tensor, video_id: torch.Tensor) -> None:
        """Add a batch at the pointer, wrapping around; the oldest entries are overwritten.

        Equivalent to adding the rows one by one: with a batch larger than K only its last K rows
        stay, and ``ptr`` advances by the batch size modulo K.

        Args:
            appearance: (B, d) features (normalised here).
            motion: (B, d) features (normalised here).
            video_id: (B,) int64 video ids (>= 0).
        """
        b = appearance.shape[0]
        if motion.shape[0] != b or video_id.shape[0] != b:
            raise ValueError(
                f"enqueue needs as many motion features and video ids as appearance features; got "
                f"{tuple(appearance.shape)}, {tuple(motion.shape)}, {tuple(video_id.shape)}."
            )
        if b == 0:
            return
        dev = self.appearance.device
        slots = (self.ptr.to(dev) + torch.arange(b, device=dev)) % self.size
        keep = slice(max(0, b - self.size), b)  # rows that survive; their slots are distinct
        self.appearance[slots[keep]] = F.normalize(appearance[keep].detach().float(), dim=1).to(dev)
        self.motion[slots[keep]] = F.normalize(motion[keep].detach().float(), dim=1).to(dev)
        self.video_id[slots[keep]] = video_id[keep].detach().long().to(dev)
        self.ptr.fill_((int(self.ptr) + b) % self.size)
        self.fill.fill_(min(int(self.fill) + b, self.size))

    def resolve_backend(self) -> str:
        """The backend a search uses ("faiss" or "torch").

        ``auto`` picks torch everywhere. Measured (docs/benchmarks.md, "Memory-bank search",
        K=32768, d=256, CPU): torch is 3-5x cheaper than faiss.knn up to 256 queries; faiss is
        1.3-1.5x cheaper from 512 queries on only when single-threaded, and loses that lead with
        two threads on a shared machine. A bank is searched with one rank's batch per speed
        (<= 64 clips per GPU in the paper recipes), well inside torch's range. On a GPU the bank
        and queries already live on the device and matmul + max needs no k > 1 over-fetch and
        filtering (GPU timings: not measured yet; ``benchmarks/memory_bank.py --device cuda``).
        """
        if self.search_backend == "torch":
            return "torch"
        if self.search_backend == "faiss":
            return "faiss"
        return "torch"

    @torch.no_grad()
    def search(self, query: torch.Tensor, query_video_id: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Top-1 dot-product search over the filled entries of other videos.

        Args:
            query: (B, d) features (normalised by the caller for cosine scores).
            query_video_id: (B,) int64; entries with this video id are never returned.

        Returns:
            (indices (B,) int64, scores (B,) float32) on the bank's device. A row with no valid
            entry (empty bank, or only its own video's entries) gets -1 and -inf: the caller
            falls back to another source of positives.
        """
        dev = self.appearance.device
        query = query.detach().to(dev, torch.float32)
        query_video_id = query_video_id.to(dev).long()
        n = int(self.fill)
        keys, key_vid = self.appearance[:n], self.video_id[:n]
        if n == 0 or query.shape[0] == 0:
            b = query.shape[0]
            return (torch.full((b,), -1, dtype=torch.long, device=dev),
                    torch.full((b,), float("-inf"), device=dev))
        if self.resolve_backend() == "faiss":
            return masked_top1_faiss(query, query_video_id, keys, key_vid, self.chunk_size)
        return masked_top1(query, query_video_id, keys, key_vid, self.chunk_size)
