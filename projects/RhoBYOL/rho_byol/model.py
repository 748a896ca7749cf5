"""rho-BYOL (Feichtenhofer et al., "A Large-Scale Study on Unsupervised Spatiotemporal
Representation Learning", CVPR 2021): BYOL across rho clips of one video.

Each sample holds rho clips of one video at independent random times (``DATA.SPEEDS``: rho
entries of 1; the library's ``PlaybackSpeedSampler`` draws each clip's start independently).
The online network f -> g -> h (projector and predictor: the paper's MLPs, Linear - BN - ReLU -
Linear with 4096 hidden and 256 output units, ``MODEL.PROJECTION``/``MODEL.PREDICTOR``) predicts
the momentum target's projection of every other clip of the same video:
``L = mean_n sum_{i != j} ||n(h(g(f(x_i)))) - n(g'(f'(x_j)))||^2 / (rho (rho - 1) / 2)``.
The target (EMA schedule, BN policy, DDP, checkpoint keys) is ascnet's momentum teacher.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from fvcore.common.config import CfgNode

from ascnet.modeling import MODEL_REGISTRY, build_backbone, build_loss
from ascnet.modeling.heads import build_predictor, build_projection
from ascnet.modeling.meta_arch.ascnet import collapse_stats
from ascnet.modeling.teacher import MomentumTeacher, OnlineNetwork


def add_config(cfg: CfgNode) -> None:
    """Add the ``RHOBYOL`` keys to ``cfg`` (in place; a no-op when they are already there)."""
    if "RHOBYOL" in cfg:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    # Loss over every ordered pair of the rho clips, by name in LOSS_REGISTRY, times WEIGHT.
    # ACPLoss is BYOL's normalised squared error as a per-clip mean over the other clips, so
    # WEIGHT 2.0 gives BYOL's symmetric sum: the pairs' sum divided by rho (rho - 1) / 2.
    cfg.RHOBYOL = CfgNode({"LOSS": "ACPLoss", "WEIGHT": 2.0})
    if was_frozen:
        cfg.freeze()


@MODEL_REGISTRY.register()
class RhoBYOL(MomentumTeacher):
    """rho-BYOL pretraining model.

    ``forward(batch)`` in training mode takes ``batch["clips"]`` (N, rho, C, T, H, W) and
    returns ``loss_byol`` (scalar with grad), its detached value ``byol`` and the collapse
    statistics of the target projections (``collapse_std``, ``collapse_cos``). In eval mode it
    returns ``{"features": online backbone features}``, (N, D) or (N, V, D).

    Args:
        cfg: reads ``MODEL.*``, ``DATA.SPEEDS`` (rho = its length), ``TEACHER.*`` and
            ``RHOBYOL.LOSS``/``WEIGHT``.
    """

    MODEL_DEFINING_KEYS = ("RHOBYOL.",)

    def __init__(self, cfg: CfgNode):
        super().__init__()
        if "RHOBYOL" not in cfg:
            raise KeyError("RHOBYOL keys are missing: list 'rho_byol' in PLUGINS (its add_config adds them).")
        self.rho = len(cfg.DATA.SPEEDS)
        if self.rho < 2:
            raise ValueError(f"rho-BYOL needs rho >= 2 clips per video, got DATA.SPEEDS {list(cfg.DATA.SPEEDS)}; "
                             "use e.g. DATA.SPEEDS [1, 1].")
        backbone = build_backbone(cfg)
        online = OnlineNetwork(backbone, {"projector": build_projection(cfg, backbone.out_dim)},
                               {"predictor": build_predictor(cfg)})
        self.init_teacher(cfg, online)
        self.loss, self.weight = build_loss(cfg, cfg.RHOBYOL.LOSS), float(cfg.RHOBYOL.WEIGHT)
        self.train(self.training)

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        clips = batch["clips"]
        if not self.training:
            return {"features": self.features(clips)}
        if clips.ndim != 6 or clips.shape[1] != self.rho:
            raise ValueError(f"RhoBYOL training expects batch['clips'] of shape (N, {self.rho}, C, T, H, W) "
                             f"(rho = len(DATA.SPEEDS)); got {tuple(clips.shape)}.")
        n, rho = clips.shape[:2]
        flat = clips.flatten(0, 1)  # (N*rho, C, T, H, W)
        (pred,) = self.online(flat)
        with torch.no_grad():
            (z,) = self.target(flat)
        loss = self.weight * self.loss(pred.float().view(n, rho, -1), z.float().view(n, rho, -1))
        stats = {f"collapse_{k}": v for k, v in collapse_stats(F.normalize(z.float(), dim=1)).items()}
        return {"loss_byol": loss, "byol": loss.detach(), **stats}
