"""SCP positive samplers: which same-speed clip of another source video is a clip's SCP positive.

A positive sampler is built as ``obj(cfg)`` (``build_positive_sampler``) and called as
``sampler(query, query_source, gallery, generator=None) -> Positives``. The gallery is a memory
bank (``RingMemoryBank``) or the current global batch (:class:`Gallery`): both expose
``appearance`` (M, d), ``motion`` (M, d), ``source_id`` (M,), the number of filled rows
``num_filled`` (a host int) and ``search(query, query_source)``.

* ``appearance_retrieval`` (the paper's): the entry whose appearance feature has the largest dot
  product with the query's, among entries of other sources.
* ``random_same_speed`` (ablation): a uniformly random entry of another source. Its randomness
  comes only from the ``generator`` passed in; ASCNet derives it from (RNG_SEED, iteration,
  rank, speed), so an exact resume draws the same positives.

Both run in float32 with autocast off and make no host read (the torch search backend).
"""
from typing import NamedTuple, Optional

import torch
from fvcore.common.config import CfgNode

from ascnet.utils.search import masked_top1

from .build import POSITIVE_SAMPLER_REGISTRY

__all__ = ["Gallery", "Positives", "PositiveSampler", "AppearanceRetrievalSampler", "RandomSameSpeedSampler"]


class Gallery(NamedTuple):
    """Candidates for positives (e.g. the current global batch at one speed).

    appearance: (M, d) L2-normalised appearance features.
    motion: (M, d) motion features.
    source_id: (M,) int64 source ids (-1 = empty slot).
    """

    appearance: torch.Tensor
    motion: torch.Tensor
    source_id: torch.Tensor

    @property
    def num_filled(self) -> int:
        return int(self.appearance.shape[0])

    def search(self, query: torch.Tensor, query_source: torch.Tensor):
        return masked_top1(query, query_source, self.appearance, self.source_id)


class Positives(NamedTuple):
    """The positive of each query.

    motion: (B, d) motion feature of the positive (zeros where ``valid`` is False).
    similarity: (B,) dot product of the query's appearance with the positive's (0 if invalid).
    index: (B,) int64 row of the positive in the gallery (-1 if none).
    valid: (B,) bool, False where the gallery has no entry of another source.
    """

    motion: torch.Tensor
    similarity: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor


def _gather_positives(query: torch.Tensor, gallery, index: torch.Tensor) -> Positives:
    """The motion features and similarities at ``index`` (B,) of ``gallery``, on query's device."""
    dev = query.device
    index = index.to(dev)
    valid = index >= 0
    n = gallery.num_filled
    if n == 0:
        d = gallery.motion.shape[1]
        zeros = torch.zeros(query.shape[0], d, device=dev)
        return Positives(zeros, torch.zeros(query.shape[0], device=dev), index, valid)
    safe = index.clamp(min=0)
    if gallery.motion.device != dev:
        safe = safe.to(gallery.motion.device)
    motion = gallery.motion[:n].index_select(0, safe).float()
    appearance = gallery.appearance[:n].index_select(0, safe).float()
    if motion.device != dev:
        motion, appearance = motion.to(dev), appearance.to(dev)
    sim = (query.float() * appearance).sum(dim=1)
    return Positives(motion * valid[:, None], sim * valid, index, valid)


class PositiveSampler:
    """Base of the positive samplers: :meth:`select` picks gallery rows, ``__call__`` gathers
    their motion features (float32, autocast off).

    Args:
        cfg: the config (``MEMORY_BANK.CHUNK_SIZE`` is read when given).
    """

    def __init__(self, cfg: Optional[CfgNode] = None):
        self.chunk_size = int(cfg.MEMORY_BANK.CHUNK_SIZE) if cfg is not None else 8192

    def select(self, query: torch.Tensor, query_source: torch.Tensor, gallery,
               generator: Optional[torch.Generator]) -> torch.Tensor:
        """(B,) int64 gallery row of each query's positive, -1 where none is valid."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(
        self,
        query: torch.Tensor,
        query_source: torch.Tensor,
        gallery,
        generator: Optional[torch.Generator] = None,
    ) -> Positives:
        """
        Args:
            query: (B, d) L2-normalised appearance features (target network).
            query_source: (B,) int64 source id of each query: entries of that source are never
                chosen.
            gallery: a memory bank or a :class:`Gallery`.
            generator: torch.Generator on the gallery's device (used by random samplers only).

        Returns:
            :class:`Positives`.
        """
        with torch.autocast(query.device.type, enabled=False):
            return _gather_positives(query, gallery, self.select(query, query_source, gallery, generator))


class AppearanceRetrievalSampler(PositiveSampler):
    """The paper's positive: top-1 appearance dot product among other sources' entries."""

    def select(self, query, query_source, gallery, generator=None):
        return gallery.search(query, query_source)[0]


class RandomSameSpeedSampler(PositiveSampler):
    """Ablation: a uniformly random filled entry of another source (same speed: same gallery).

    Implemented as the masked top-1 of i.i.d. uniform scores, which is uniform over the valid
    entries and reuses the chunked masking (memory bounded, own source never chosen).
    """

    def select(self, query, query_source, gallery, generator=None):
        n = gallery.num_filled
        keys, key_source = gallery.appearance[:n], gallery.source_id[:n]
        b, dev = query.shape[0], keys.device

        def scores_fn(start, stop):
            return torch.rand(b, stop - start, generator=generator, device=dev)

        if query_source.device != dev:
            query, query_source = query.to(dev), query_source.to(dev)
        index, _ = masked_top1(query, query_source, keys, key_source, self.chunk_size, scores_fn=scores_fn)
        return index


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
