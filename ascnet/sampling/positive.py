"""SCP positive samplers: which same-speed clip of another video is a clip's SCP positive.

A positive sampler is built as ``obj(cfg)`` (``build_positive_sampler``) and called as
``sampler(query, query_video_id, gallery, generator=None) -> Positives``. The gallery is a
memory bank (``RingMemoryBank``) or the current global batch (:class:`Gallery`): both expose
``appearance`` (M, d), ``motion`` (M, d), ``video_id`` (M,) and a number of filled rows.

* ``appearance_retrieval`` (the paper's): the entry whose appearance feature has the largest dot
  product with the query's, among entries of other videos.
* ``random_same_speed`` (ablation): a uniformly random entry of another video. Its randomness
  comes only from the ``generator`` passed in; ASCNet derives it from (RNG_SEED, iteration,
  rank, speed), so an exact resume draws the same positives.
"""
from typing import NamedTuple, Optional

import torch
from fvcore.common.config import CfgNode

from ascnet.utils.search import masked_top1

from .build import POSITIVE_SAMPLER_REGISTRY

__all__ = ["Gallery", "Positives", "AppearanceRetrievalSampler", "RandomSameSpeedSampler"]


class Gallery(NamedTuple):
    """Candidates for positives (e.g. the current global batch at one speed).

    appearance: (M, d) L2-normalised appearance features.
    motion: (M, d) motion features.
    video_id: (M,) int64 video ids (-1 = empty slot).
    """

    appearance: torch.Tensor
    motion: torch.Tensor
    video_id: torch.Tensor

    @property
    def fill(self) -> int:
        return int(self.appearance.shape[0])

    def search(self, query, query_video_id):
        return masked_top1(query, query_video_id, self.appearance, self.video_id)


class Positives(NamedTuple):
    """The positive of each query.

    motion: (B, d) motion feature of the positive (zeros where ``valid`` is False).
    similarity: (B,) dot product of the query's appearance with the positive's (0 if invalid).
    index: (B,) int64 row of the positive in the gallery (-1 if none).
    valid: (B,) bool, False where the gallery has no entry of another video.
    """

    motion: torch.Tensor
    similarity: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor


def _gather_positives(query: torch.Tensor, gallery, index: torch.Tensor) -> Positives:
    valid = index >= 0
    safe = index.clamp(min=0)
    n = int(gallery.fill)
    if n == 0:
        d = gallery.motion.shape[1]
        zeros = torch.zeros(query.shape[0], d, device=query.device)
        return Positives(zeros, torch.zeros(query.shape[0], device=query.device), index, valid)
    motion = gallery.motion[:n][safe].float()
    appearance = gallery.appearance[:n][safe].float()
    sim = (query.float() * appearance.to(query.device)).sum(dim=1)
    motion = motion.to(query.device) * valid[:, None].to(query.device)
    sim = sim * valid.to(query.device)
    return Positives(motion, sim, index.to(query.device), valid.to(query.device))


class AppearanceRetrievalSampler:
    """The paper's positive: top-1 appearance dot product among other videos' entries.

    Args:
        cfg: unused (the registry's call signature).
    """

    def __init__(self, cfg: Optional[CfgNode] = None):
        pass

    @torch.no_grad()
    def __call__(
        self,
        query: torch.Tensor,
        query_video_id: torch.Tensor,
        gallery,
        generator: Optional[torch.Generator] = None,
    ) -> Positives:
        """
        Args:
            query: (B, d) L2-normalised appearance features (target network).
            query_video_id: (B,) int64.
            gallery: a memory bank or a :class:`Gallery` (with ``search``).
            generator: unused (deterministic sampler).

        Returns:
            :class:`Positives`.
        """
        index, _ = gallery.search(query, query_video_id)
        return _gather_positives(query, gallery, index)


class RandomSameSpeedSampler:
    """Ablation: a uniformly random filled entry of another video (same speed: same gallery).

    Implemented as the masked top-1 of i.i.d. uniform scores, which is uniform over the valid
    entries and reuses the chunked masking (memory bounded, own video never chosen).

    Args:
        cfg: reads ``MEMORY_BANK.CHUNK_SIZE``.
    """

    def __init__(self, cfg: Optional[CfgNode] = None):
        self.chunk_size = int(cfg.MEMORY_BANK.CHUNK_SIZE) if cfg is not None else 8192

    @torch.no_grad()
    def __call__(
        self,
        query: torch.Tensor,
        query_video_id: torch.Tensor,
        gallery,
        generator: Optional[torch.Generator] = None,
    ) -> Positives:
        """
        Args:
            query: (B, d) L2-normalised appearance features (only used for the similarity stat).
            query_video_id: (B,) int64.
            gallery: a memory bank or a :class:`Gallery`.
            generator: torch.Generator on the gallery's device; the only source of randomness.

        Returns:
            :class:`Positives`.
        """
        n = int(gallery.fill)
        keys = gallery.appearance[:n]
        key_vid = gallery.video_id[:n]
        b = query.shape[0]
        dev = keys.device

        def scores_fn(start, stop):
            return torch.rand(b, stop - start, generator=generator, device=dev)

        index, _ = masked_top1(
            query.to(dev), query_video_id.to(dev), keys, key_vid, self.chunk_size, scores_fn=scores_fn
        )
        return _gather_positives(query, gallery, index)


# The registry keys by object name; the config names are lower-case, so register small
# builder functions under those names.
@POSITIVE_SAMPLER_REGISTRY.register()
def appearance_retrieval(cfg: CfgNode) -> AppearanceRetrievalSampler:
    """Build the paper's SCP positive sampler (``ASCNET.POSITIVE_SAMPLER appearance_retrieval``)."""
    return AppearanceRetrievalSampler(cfg)


@POSITIVE_SAMPLER_REGISTRY.register()
def random_same_speed(cfg: CfgNode) -> RandomSameSpeedSampler:
    """Build the ablation's SCP positive sampler (``ASCNET.POSITIVE_SAMPLER random_same_speed``)."""
    return RandomSameSpeedSampler(cfg)
