"""Downstream action-recognition model: backbone + the linear layer of supplementary Table 1.

The projections and predictors of pretraining are dropped: only the backbone's weights are
taken from a pretraining checkpoint (:meth:`Classifier.load_pretrained`). With
``freeze_backbone`` (the linear protocol) the backbone gets ``requires_grad=False`` and its
BatchNorm layers stay in eval mode for the whole run, whatever ``train()`` is called with, so
neither its weights nor its running statistics ever change.
"""
import logging
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fvcore.common.config import CfgNode
from torch import nn

from ascnet.modeling.backbone import build_backbone
from ascnet.modeling.heads import build_cls_head

from .build import MODEL_REGISTRY

logger = logging.getLogger(__name__)

# The values of LINEAR.FEATURE_NORM (and of the ``feature_norm`` argument).
FEATURE_NORMS = ("bn", "none")


@MODEL_REGISTRY.register()
class Classifier(nn.Module):
    """Backbone f + ``MODEL.CLS_HEAD`` (Linear(D, MODEL.NUM_CLASSES)).

    With a frozen backbone and ``LINEAR.FEATURE_NORM: bn`` (the default of the linear
    protocol), the features pass through ``BatchNorm1d(D, affine=False)`` before the linear
    layer: no trained parameters, running statistics of the training features, a fixed affine
    map at test time.

    Args:
        cfg: the config (``MODEL.BACKBONE.*``, ``MODEL.CLS_HEAD.*``, ``MODEL.NUM_CLASSES``).
        freeze_backbone: linear protocol (frozen backbone, BN in eval mode); the task decides
            (``ascnet.engine.downstream.DownstreamTrainer`` passes True for TASK linear).
        feature_norm: "bn" or "none" (see above). None = ``LINEAR.FEATURE_NORM`` when the
            backbone is frozen, else "none" (testing a linear-protocol checkpoint passes "bn").

    ``forward(batch)``, with ``batch["clips"]`` of shape (N, C, T, H, W) or
    (N, V, C, T, H, W) (V views of each video) and ``batch["label"]`` (N,):

    - training mode: ``{"loss_cls": cross-entropy (scalar), "acc": top-1 % (no grad)}``
      (with V views in training, every view is a sample with its video's label);
    - eval mode: ``{"probs": (N, K) softmax averaged over the V views,
      "logits": (N, K) logits averaged over the V views}``.
    """

    def __init__(self, cfg: CfgNode, freeze_backbone: bool = False, feature_norm: Optional[str] = None) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg)
        self.head = build_cls_head(cfg, self.backbone.out_dim)
        self.num_classes = int(cfg.MODEL.NUM_CLASSES)
        self.freeze_backbone = bool(freeze_backbone)
        # Linear protocol [D]: parameter-free standardisation of the frozen features
        # (LINEAR.FEATURE_NORM); an affine map in eval mode, so the classifier stays linear.
        if feature_norm is None:
            feature_norm = cfg.LINEAR.FEATURE_NORM if self.freeze_backbone else "none"
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"LINEAR.FEATURE_NORM is {feature_norm!r}; choose one of {list(FEATURE_NORMS)}.")
        if feature_norm == "bn":
            self.feat_norm = nn.BatchNorm1d(self.backbone.out_dim, affine=False)
        else:
            self.feat_norm = nn.Identity()
        if self.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()
        # Set by set_feature_statistics: the standardisation is a fixed map in training too.
        self.feature_norm_fixed = False

    def train(self, mode: bool = True) -> "Classifier":
        """Set train/eval mode; a frozen backbone always stays in eval mode (BN statistics fixed),
        and so does a feature standardisation with fixed statistics."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        if self.feature_norm_fixed:
            self.feat_norm.eval()
        return self

    @torch.no_grad()
    def set_feature_statistics(self, mean: Optional[torch.Tensor] = None, var: Optional[torch.Tensor] = None) -> None:
        """Fix the standardisation of the frozen features (``LINEAR.FEATURE_NORM bn``).

        With ``mean`` / ``var`` ((D,), the training set's feature statistics) they replace the
        running statistics; without, the current ones are kept (a resumed run). From then on the
        standardisation is the same affine map in training and at test time: batch statistics
        of small batches made the training features differ from the test features (measured in
        docs/evaluation.md).
        """
        if not isinstance(self.feat_norm, nn.BatchNorm1d):
            return
        if mean is not None:
            self.feat_norm.running_mean.copy_(mean)
            self.feat_norm.running_var.copy_(var)
        self.feature_norm_fixed = True
        self.feat_norm.eval()

    def load_pretrained(self, path_or_state, strict_backbone: bool = False):
        """Load the backbone (only) from a pretraining, downstream or bare backbone checkpoint.

        Args:
            path_or_state: checkpoint path (any iopath URI) or checkpoint / state dict.
            strict_backbone: fail when a backbone key is missing from the checkpoint.

        Returns:
            ``ascnet.modeling.weights.LoadReport`` (loaded / missing / unexpected keys).
        """
        from ascnet.modeling.weights import load_backbone_weights

        report = load_backbone_weights(self.backbone, path_or_state, strict=strict_backbone)
        logger.info("Classifier: backbone initialised from the checkpoint (%s); head at random init.", report.summary())
        return report

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, D) backbone features (no graph through a frozen backbone)."""
        if self.freeze_backbone:
            with torch.no_grad():
                return self.backbone(clips)
        return self.backbone(clips)

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        clips = batch["clips"]
        if clips.ndim == 6:  # (N, V, C, T, H, W)
            n, v = clips.shape[:2]
            clips = clips.flatten(0, 1)
        elif clips.ndim == 5:
            n, v = clips.shape[0], 1
        else:
            raise ValueError(
                f"Classifier expects clips of shape (N, C, T, H, W) or (N, V, C, T, H, W), got {tuple(clips.shape)}."
            )
        logits = self.head(self.feat_norm(self.features(clips)))  # (N * V, K)
        if self.training:
            labels = batch["label"].to(logits.device).long()
            if v > 1:
                labels = labels.repeat_interleave(v)
            if (labels < 0).any() or (labels >= self.num_classes).any():
                raise ValueError(
                    f"Labels must be in [0, MODEL.NUM_CLASSES={self.num_classes}); got min {int(labels.min())}, "
                    f"max {int(labels.max())}. Set MODEL.NUM_CLASSES to the dataset's class count."
                )
            loss = F.cross_entropy(logits, labels)
            with torch.no_grad():
                acc = (logits.argmax(dim=1) == labels).float().mean() * 100.0
            return {"loss_cls": loss, "acc": acc}
        probs = logits.float().softmax(dim=1).view(n, v, -1).mean(dim=1)
        return {"probs": probs, "logits": logits.float().view(n, v, -1).mean(dim=1)}
