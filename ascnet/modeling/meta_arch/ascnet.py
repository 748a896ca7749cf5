"""ASCNet: Appearance-Speed Consistency pretraining (docs/method.md, section 1).

Online network: backbone f, projections g_a (appearance) and g_m (speed/motion), predictors
h_a, h_m. Target network: an exponential moving average of f, g_a, g_m (no predictors), never
trained by gradients. Losses:

* ACP: the online appearance prediction of each clip is pulled to the target appearance
  projection of the same video's clips at the other speeds.
* SCP: the online motion prediction of each clip is pulled to the motion feature of a
  same-speed clip of another source video, found by appearance retrieval in a per-speed memory
  bank (or in the current global batch while the bank is still filling).

Both losses, the positive search and the bank run in float32 with autocast off, whatever AMP
does to the networks: under bf16 near-duplicate bank keys would tie and the positive would be
chosen by ring position rather than similarity.

The training forward makes no host-device synchronisation (checked on the CPU by
``tests/modeling/test_ascnet.py`` with ``HostSyncCounter``): the banks keep host mirrors of their
pointer and fill, the iteration that seeds the random positives has a host mirror, bank and batch
positives are merged with masks, SCP is a masked mean, and the target features and ids are
gathered in one packed all-gather without a size exchange (pretraining loaders drop the last
incomplete batch, so every rank's batch has the same size). The faiss bank search is the
exception: it reads its hits on the host (``MEMORY_BANK.SEARCH auto`` is torch).

The target, its EMA schedule (``TEACHER.EMA_BASE``), its BatchNorm policy
(``TEACHER.BN_MODE``) and DDP handling are the momentum teacher's
(:mod:`ascnet.modeling.teacher`). Choice of ours [D]: with S > 2 speeds ACP averages the
symmetric term over all pairs of speeds (``ACPLoss``).
"""
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.modeling.backbone import build_backbone
from ascnet.modeling.heads import build_predictor, build_projection
from ascnet.modeling.losses import build_loss
from ascnet.modeling.memory_bank import build_memory_bank
from ascnet.sampling import build_positive_sampler
from ascnet.sampling import positive as _positive  # noqa: F401  (registers the positive samplers)
from ascnet.sampling.positive import Gallery, Positives
from ascnet.modeling.teacher import MomentumTeacher, OnlineNetwork, TargetNetwork, ema_momentum
from ascnet.utils.distributed import all_gather_packed, get_rank

from .build import MODEL_REGISTRY

__all__ = ["ASCNet", "OnlineNetwork", "TargetNetwork", "collapse_stats", "ema_momentum"]


@torch.no_grad()
def collapse_stats(z: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Collapse statistics of a batch of L2-normalised projections.

    Args:
        z: (B, d) unit-norm rows.

    Returns:
        ``{"std": mean over the d dimensions of the per-dimension std over the batch (about
        1/sqrt(d) for healthy, spread-out features, 0 when every row is the same vector),
        "cos": mean cosine similarity of the B * (B - 1) pairs of different rows (about 0 when
        spread out, 1 when collapsed)}``, 0-d tensors.
    """
    z = z.float()
    b = z.shape[0]
    std = z.std(dim=0).mean() if b > 1 else z.new_zeros(())
    gram_sum = z.sum(dim=0).pow(2).sum()  # sum_ij z_i . z_j
    cos = (gram_sum - z.pow(2).sum()) / max(b * (b - 1), 1)
    return {"std": std, "cos": cos}


@MODEL_REGISTRY.register()
class ASCNet(MomentumTeacher):
    """ASCNet pretraining model.

    ``forward(batch)`` in training mode takes ``batch["clips"]`` (N, S, C, T, H, W), one clip per
    speed of ``DATA.SPEEDS``, ``batch["index"]`` (N,) video ids and, when the dataset provides
    it, ``batch["source"]`` (N,) int64 source-video ids (UCF-101 group, HMDB-51 source, Kinetics
    youtube_id): an SCP positive is never a clip of the query's own source. A dataset without
    ``"source"`` makes each video its own source (``batch["index"]`` stands in). It returns:

    * ``loss_acp`` = ACP_WEIGHT * L_ACP and ``loss_scp`` = SCP_WEIGHT * L_SCP (scalars with grad);
    * detached scalar statistics: ``acp``, ``scp`` (unweighted), ``pos_sim`` (mean query-positive
      appearance similarity), ``bank_fill`` (mean entries per speed bank after this step's
      enqueue), ``scp_from_bank`` (fraction of positives retrieved from the banks rather than
      the batch), and the collapse statistics of the target projections of each branch,
      ``collapse_{appearance,speed}_{std,cos}`` (:func:`collapse_stats`; healthy std is about
      1/sqrt(d)).

    In eval mode it returns ``{"features": online backbone features}``, (N, D) for
    (N, C, T, H, W) clips or (N, V, D) for (N, V, C, T, H, W).

    After every optimiser step the trainer calls :meth:`after_step` (EMA update of the target).
    Under DDP only ``self.online`` is wrapped (:meth:`wrap_ddp`); checkpoint keys are the same
    with and without the wrapper (``online.backbone.*``, never ``online.module.*``).

    Args:
        cfg: reads ``MODEL.*`` (backbone, projection, predictor), ``ASCNET.*``, ``TEACHER.*``,
            ``DATA.SPEEDS``, ``MEMORY_BANK.*``, ``TRAIN.BATCH_SIZE`` (default bank fill
            threshold) and ``RNG_SEED``.
    """

    MODEL_DEFINING_KEYS = ("ASCNET.", "MEMORY_BANK.")

    def __init__(self, cfg: CfgNode):
        super().__init__()
        backbone = build_backbone(cfg)
        projections = {"proj_a": build_projection(cfg, backbone.out_dim), "proj_m": build_projection(cfg, backbone.out_dim)}
        self.init_teacher(cfg, OnlineNetwork(backbone, projections, {"pred_a": build_predictor(cfg), "pred_m": build_predictor(cfg)}))
        self.speeds = list(cfg.DATA.SPEEDS)
        if len(self.speeds) < 2:
            raise ValueError(
                f"ASCNet needs at least two playback speeds, got DATA.SPEEDS {self.speeds}; "
                "use e.g. DATA.SPEEDS [1, 2]."
            )
        self.feat_dim = int(cfg.MODEL.PROJECTION.OUT_DIM)
        self.banks = nn.ModuleList([build_memory_bank(cfg, self.feat_dim) for _ in self.speeds])
        self.acp_loss = build_loss(cfg, cfg.ASCNET.ACP_LOSS)
        self.scp_loss = build_loss(cfg, cfg.ASCNET.SCP_LOSS)
        self.positive_sampler = build_positive_sampler(cfg)
        self.acp_weight = float(cfg.ASCNET.ACP_WEIGHT)
        self.scp_weight = float(cfg.ASCNET.SCP_WEIGHT)
        min_fill = int(cfg.ASCNET.BANK_MIN_FILL) or int(cfg.TRAIN.BATCH_SIZE)
        # A threshold above the bank size could never be reached: cap it at K.
        self.bank_min_fill = min(min_fill, int(cfg.MEMORY_BANK.SIZE))
        # With the teacher's ``iteration`` buffer (steps done, in the checkpoint) the seed of the
        # random positive sampler, so that an exact resume draws the same positives.
        self.seed = int(cfg.RNG_SEED)
        # Every rank's batch has the same size (pretraining loaders use drop_last), so the
        # all-gather of target features needs no size exchange.
        self.equal_rank_batches = True
        self.train(self.training)

    def rank0_state(self) -> List[torch.Tensor]:
        """The banks, broadcast from rank 0 with the target when DDP wraps the online network."""
        return list(self.banks.buffers())

    # ------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------
    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        clips = batch["clips"]
        if not self.training:
            return {"features": self.features(clips)}
        if clips.ndim != 6 or clips.shape[1] != len(self.speeds):
            raise ValueError(
                f"ASCNet training expects batch['clips'] of shape (N, S, C, T, H, W) with S = "
                f"{len(self.speeds)} clips (DATA.SPEEDS {self.speeds}); got {tuple(clips.shape)}. "
                "Use a dataset in 'pretrain' mode."
            )
        n, s = clips.shape[:2]
        dev = clips.device
        video_id = batch["index"].to(dev)
        source = batch.get("source", video_id)  # no source ids: each video its own source
        source = source.to(dev)
        flat = clips.flatten(0, 1)  # (N*S, C, T, H, W), row n*S + s

        # Online: every trained parameter in one call.
        pred_a, pred_m = self.online(flat)
        pred_a, pred_m = pred_a.float().view(n, s, -1), pred_m.float().view(n, s, -1)
        with torch.no_grad():
            z_a, z_m = self.target(flat)
        with torch.autocast(dev.type, enabled=False):  # losses and positives in float32
            with torch.no_grad():
                z_a = F.normalize(z_a.float(), dim=1).view(n, s, -1)
                z_m = F.normalize(z_m.float(), dim=1).view(n, s, -1)
            acp = self.acp_loss(pred_a, z_a)
            # The global batch of target features and ids (every rank sees the same, in rank
            # order), in one collective.
            g_za, g_zm, g_vid, g_src = all_gather_packed(
                (z_a, z_m, video_id.long(), source.long()), equal_sizes=self.equal_rank_batches
            )
            positives: List[Positives] = []
            from_bank = []
            for si in range(s):
                gallery = Gallery(g_za[:, si], g_zm[:, si], g_src)
                pos, used_bank = self._positives(si, z_a[:, si], source.long(), gallery)
                positives.append(pos)
                from_bank.append(used_bank)
            pos_m = torch.stack([p.motion for p in positives], dim=1)  # (N, S, d)
            valid = torch.stack([p.valid for p in positives], dim=1)  # (N, S)
            sim = torch.stack([p.similarity for p in positives], dim=1)
            scp = self.scp_loss(pred_m.flatten(0, 1), pos_m.flatten(0, 1), valid.flatten())

        with torch.no_grad():
            for si, bank in enumerate(self.banks):
                bank.enqueue(g_za[:, si], g_zm[:, si], g_vid, g_src)
            num_valid = valid.sum().clamp(min=1)
            stats = {
                "acp": acp.detach(),
                "scp": scp.detach(),
                "pos_sim": (sim * valid).sum() / num_valid,
                "bank_fill": torch.stack([b.fill.float() for b in self.banks]).mean(),
                "scp_from_bank": (torch.stack(from_bank, dim=1) & valid).float().sum() / num_valid,
            }
            # Collapse monitors of each branch's target projections (all speeds of this rank's batch).
            for branch, z in (("appearance", z_a), ("speed", z_m)):
                for k, v in collapse_stats(z.flatten(0, 1)).items():
                    stats[f"collapse_{branch}_{k}"] = v
        return {"loss_acp": self.acp_weight * acp, "loss_scp": self.scp_weight * scp, **stats}

    def _generator(self, speed_index: int, device: torch.device) -> torch.Generator:
        # Derived from (seed, iteration, rank, speed) so each rank and speed draws differently
        # and an exact resume replays the same draws. Host values only (the iteration's mirror).
        seq = np.random.SeedSequence([self.seed, self._host_iteration, get_rank(), speed_index])
        return torch.Generator(device=device).manual_seed(int(seq.generate_state(1, np.uint64)[0]) >> 1)

    @torch.no_grad()
    def _positives(self, si: int, query: torch.Tensor, query_source: torch.Tensor, batch: Gallery):
        """Positives of the clips at speed index ``si``: from the bank once it holds
        ``bank_min_fill`` entries, else (and for rows the bank cannot serve) from the batch.

        Both searches run whenever the bank is in use and the rows are merged with a mask, so no
        tensor value is read on the host.

        Args:
            si: speed index.
            query: (B, d) L2-normalised target appearance features of this rank's clips.
            query_source: (B,) int64 source ids; no positive of the same source is returned.
            batch: the global batch at this speed (:class:`Gallery`).

        Returns:
            (Positives, from_bank (B,) bool).
        """
        bank = self.banks[si]
        gen = self._generator(si, bank.appearance.device)
        pos = None
        if bank.num_filled >= self.bank_min_fill:
            pos = self.positive_sampler(query, query_source, bank, generator=gen)
        gen_b = gen if batch.appearance.device == bank.appearance.device else self._generator(si, batch.appearance.device)
        alt = self.positive_sampler(query, query_source, batch, generator=gen_b)
        if pos is None:
            return alt, torch.zeros_like(alt.valid)
        keep = pos.valid
        merged = Positives(
            torch.where(keep[:, None], pos.motion, alt.motion),
            torch.where(keep, pos.similarity, alt.similarity),
            torch.where(keep, pos.index, -torch.ones_like(pos.index)),
            keep | alt.valid,
        )
        return merged, keep
