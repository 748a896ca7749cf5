"""Moving backbone weights between checkpoints and models.

Any checkpoint of ours holds a backbone: a pretraining checkpoint (ASCNet: the online encoder
under ``online.backbone.``, its EMA copy under ``target.backbone.``), a downstream one
(Classifier: ``backbone.``), or a bare backbone state dict (``tools/export_backbone.py``). DDP may
add ``module.`` anywhere in a key. :func:`extract_backbone_state_dict` finds the backbone in all
of them (the ONLINE encoder of a pretraining checkpoint), and :func:`load_backbone_weights`
loads it and refuses loads that would silently leave the backbone at its random init.
"""
import logging
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Union

import torch
from torch import nn

from ascnet.utils.distributed import strip_ddp_key

from .protocol import backbone_prefixes

logger = logging.getLogger(__name__)

# Where a backbone lives in our checkpoints, most specific first, comes from
# ascnet.modeling.protocol.backbone_prefixes(): each pretraining model declares its own
# (ASCNet: "online.backbone."; the online encoder wins over its EMA target copy), then
# "backbone." (downstream checkpoints) and "encoder.".
# Keys of a checkpoint dict that may hold the model's state dict (Checkpointer saves "model").
_STATE_KEYS = ("model", "state_dict", "model_state")

StateOrPath = Union[str, Mapping[str, Any]]


class WeightsError(ValueError):
    """The weights cannot be loaded into the backbone; the message says why and what to do."""


class LoadReport(NamedTuple):
    """What :func:`load_backbone_weights` did.

    Attributes:
        loaded: backbone keys that received a tensor.
        missing: backbone keys absent from the weights (left as they were).
        unexpected: keys of the weights the backbone has no slot for (ignored).
    """

    loaded: List[str]
    missing: List[str]
    unexpected: List[str]

    def summary(self) -> str:
        return f"loaded {len(self.loaded)}, missing {len(self.missing)}, unexpected {len(self.unexpected)}"


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """Read a checkpoint (any iopath URI) on CPU with ``weights_only=True`` (no code is run),
    through :func:`ascnet.utils.checkpoint.read_checkpoint`, the one reader of checkpoints.

    Raises:
        CheckpointError: the file is missing, unreadable or needs arbitrary unpickling.
    """
    from ascnet.utils.checkpoint import read_checkpoint

    return read_checkpoint(path, source="TRAIN.CHECKPOINT_FILE_PATH / --checkpoint")


def _model_state(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """The state dict inside a checkpoint dict (or the dict itself if it is one)."""
    for key in _STATE_KEYS:
        sub = checkpoint.get(key) if isinstance(checkpoint, Mapping) else None
        if isinstance(sub, Mapping) and sub and all(isinstance(k, str) for k in sub):
            if any(torch.is_tensor(v) for v in sub.values()):
                return dict(sub)
    return {k: v for k, v in checkpoint.items() if torch.is_tensor(v)}


def _strip_ddp(key: str) -> str:
    # DDP wraps a module as `.module`: `module.backbone.x` or `online.module.backbone.x` (and
    # likewise under any declared prefix's first component).
    return strip_ddp_key(key, ("",) + tuple(p.split(".")[0] + "." for p in backbone_prefixes() if p.count(".") > 1))


def extract_backbone_state_dict(
    checkpoint_or_path: StateOrPath, prefix: Optional[str] = None
) -> Dict[str, torch.Tensor]:
    """Return the backbone's state dict (keys without prefix) from any of our checkpoints.

    Args:
        checkpoint_or_path: a path (any iopath URI), a checkpoint dict (state dict under
            ``"model"``), or a state dict.
        prefix: where the backbone is (e.g. ``"online.backbone."``); None tries
            :func:`ascnet.modeling.protocol.backbone_prefixes` in order, then takes the state dict as a bare backbone.

    Returns:
        {key: tensor} with the prefix removed.

    Raises:
        WeightsError: an explicit ``prefix`` matches no key, or no tensor is found.
    """
    ckpt = load_checkpoint_file(checkpoint_or_path) if isinstance(checkpoint_or_path, str) else checkpoint_or_path
    if not isinstance(ckpt, Mapping):
        raise WeightsError(f"Expected a checkpoint dict or a state dict, got {type(ckpt).__name__}.")
    state = {_strip_ddp(k): v for k, v in _model_state(ckpt).items()}
    if not state:
        raise WeightsError(
            f"No tensors found in the checkpoint (top-level keys: {sorted(ckpt)[:10]}). "
            "Give a checkpoint written by ascnet or a backbone state dict."
        )
    candidates = [prefix] if prefix is not None else list(backbone_prefixes())
    for p in candidates:
        sub = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        if sub:
            logger.info("Backbone weights: %d tensors under %r.", len(sub), p)
            return sub
    if prefix is not None:
        raise WeightsError(
            f"No key of the checkpoint starts with {prefix!r}. Key prefixes present: "
            f"{sorted({k.split('.')[0] + '.' for k in state})}."
        )
    logger.info("Backbone weights: no known prefix, using the state dict as a bare backbone.")
    return state


def load_backbone_weights(
    backbone: nn.Module, state_or_path: StateOrPath, prefix: Optional[str] = None, strict: bool = False
) -> LoadReport:
    """Load backbone weights from any of our checkpoints into ``backbone`` and log a report.

    Args:
        backbone: the module to fill (its own state-dict keys, no prefix).
        state_or_path: path, checkpoint dict or state dict (see :func:`extract_backbone_state_dict`).
        prefix: where the backbone is in the checkpoint (None: found automatically).
        strict: also fail when some backbone keys are missing from the weights.

    Returns:
        :class:`LoadReport` (loaded / missing / unexpected keys).

    Raises:
        WeightsError: no key matched (a load that would change nothing), a shape mismatch, or
            (``strict``) missing keys.
    """
    weights = extract_backbone_state_dict(state_or_path, prefix=prefix)
    own = backbone.state_dict()
    matched = [k for k in own if k in weights]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if not matched:
        raise WeightsError(
            "None of the checkpoint's keys matches the backbone: nothing would be loaded. "
            f"Backbone keys look like {list(own)[:3]}, checkpoint keys like {list(weights)[:3]}. "
            "Check MODEL.BACKBONE.NAME/WIDTHS against the checkpoint's config, or pass prefix=."
        )
    bad = [(k, tuple(weights[k].shape), tuple(own[k].shape)) for k in matched if weights[k].shape != own[k].shape]
    if bad:
        lines = "; ".join(f"{k}: checkpoint {a} vs backbone {b}" for k, a, b in bad[:5])
        raise WeightsError(
            f"{len(bad)} backbone tensors have other shapes in the checkpoint ({lines}). The "
            "checkpoint was trained with another backbone configuration (MODEL.BACKBONE.*)."
        )
    if strict and missing:
        raise WeightsError(f"{len(missing)} backbone keys are missing from the checkpoint, e.g. {missing[:5]}.")
    backbone.load_state_dict({k: weights[k] for k in matched}, strict=False)
    report = LoadReport(loaded=matched, missing=missing, unexpected=unexpected)
    logger.info("Loaded backbone weights: %s.", report.summary())
    if missing:
        logger.warning("Backbone keys not in the checkpoint (kept as initialised): %s", missing[:20])
    if unexpected:
        logger.warning("Checkpoint keys the backbone does not have (ignored): %s", unexpected[:20])
    return report


def save_backbone_weights(state: Mapping[str, torch.Tensor], path: str) -> None:
    """Write a bare backbone state dict as ``{"model": state}`` (readable by the loaders here),
    atomically (:func:`ascnet.utils.io.atomic_write`)."""
    from ascnet.utils.io import atomic_write

    atomic_write(path, lambda f: torch.save({"model": dict(state)}, f))
