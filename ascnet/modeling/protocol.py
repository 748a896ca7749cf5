"""The contract between a pretraining model and the engine, as a base class.

The trainer, the training monitor, checkpoint import (:mod:`ascnet.modeling.weights`) and
auto-resume (:mod:`ascnet.engine.resume`) rely on what :class:`PretrainModel` declares. A model
(built-in or a plugin's) subclasses it and states, as class attributes, where its encoder lives
in its checkpoints (:attr:`PretrainModel.BACKBONE_PREFIXES`) and which config keys define it
(:attr:`PretrainModel.MODEL_DEFINING_KEYS`); defining the subclass registers both, so no list
elsewhere is edited for a new method.
"""
from typing import Dict, List, Tuple

import torch
from torch import nn

__all__ = ["PretrainModel", "backbone_prefixes", "model_defining_keys"]

# Where an encoder lives in checkpoints that no PretrainModel declares: a downstream checkpoint
# (Classifier: ``backbone.``) and foreign ones (``encoder.``). Prefixes declared by pretraining
# models come first (an online encoder wins over a bare ``backbone.``).
_GENERIC_PREFIXES: Tuple[str, ...] = ("backbone.", "encoder.")
_DECLARED_PREFIXES: List[str] = []


def backbone_prefixes() -> Tuple[str, ...]:
    """Every prefix under which a checkpoint may hold an encoder, most specific first.

    Returns:
        The prefixes declared by the :class:`PretrainModel` subclasses defined so far (longest
        first), then ``backbone.`` and ``encoder.``.
    """
    declared = sorted(dict.fromkeys(_DECLARED_PREFIXES), key=len, reverse=True)
    return tuple(declared) + tuple(p for p in _GENERIC_PREFIXES if p not in declared)


class PretrainModel(nn.Module):
    """Base class of the self-supervised models in ``MODEL_REGISTRY``.

    What the engine calls (N videos, S clips per video, V views, D feature width):

    * ``forward(batch)`` in training mode: ``batch["clips"]`` (N, S, C, T, H, W) float32,
      normalised, S = ``len(DATA.SPEEDS)``; ``batch["index"]`` (N,) int64 video ids;
      ``batch["label"]`` (N,) int64 (-1 if unknown). Returns a dict: entries named ``loss*``
      are 0-d tensors with grad, summed by the trainer; any other entry is a detached 0-d
      statistic, logged.
    * ``forward(batch)`` in eval mode: ``batch["clips"]`` (N, C, T, H, W) or
      (N, V, C, T, H, W) -> ``{"features": (N, D) or (N, V, D)}``.
    * :attr:`backbone`: the encoder (N, C, T, H, W) -> (N, D) that downstream tasks keep and
      the training monitor probes.
    * :meth:`after_step` after every optimiser step; returns statistics to log.
    * :meth:`wrap_ddp` under DDP, when defined: wraps what receives gradients; a model without
      it is wrapped whole.

    Class attributes a subclass sets:

    * ``BACKBONE_PREFIXES``: state-dict prefixes of its encoder in its checkpoints (e.g.
      ``("online.backbone.",)``), read by :func:`ascnet.modeling.weights.extract_backbone_state_dict`.
    * ``MODEL_DEFINING_KEYS``: config keys, or prefixes ending in ``.``, that must not change
      when a run of this model resumes (besides ``MODEL.``, the clip shape and ``TASK``, which
      :mod:`ascnet.engine.resume` always compares).
    """

    BACKBONE_PREFIXES: Tuple[str, ...] = ()
    MODEL_DEFINING_KEYS: Tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _DECLARED_PREFIXES.extend(cls.__dict__.get("BACKBONE_PREFIXES", ()))

    @property
    def backbone(self) -> nn.Module:
        """The encoder downstream tasks keep: (N, C, T, H, W) -> (N, D)."""
        raise NotImplementedError(f"{type(self).__name__} must define the property 'backbone'.")

    def after_step(self, iteration: int, max_iter: int) -> Dict[str, float]:
        """Called after optimiser step ``iteration`` (0-based) of ``max_iter``.

        Returns:
            Statistics to log (none by default).
        """
        return {}

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """Encoder features of (N, C, T, H, W) -> (N, D) or (N, V, C, T, H, W) -> (N, V, D)."""
        if clips.ndim == 6:
            n, v = clips.shape[:2]
            return self.backbone(clips.flatten(0, 1)).view(n, v, -1)
        return self.backbone(clips)


def model_defining_keys(model_cls: type) -> Tuple[str, ...]:
    """The ``MODEL_DEFINING_KEYS`` of ``model_cls`` and of its bases (empty for other classes)."""
    keys: List[str] = []
    for klass in getattr(model_cls, "__mro__", ()):
        keys.extend(klass.__dict__.get("MODEL_DEFINING_KEYS", ()))
    return tuple(dict.fromkeys(keys))

