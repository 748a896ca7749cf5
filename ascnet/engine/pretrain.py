"""TASK ``pretrain``: self-supervised ASCNet pretraining.

Runs the shared :class:`ascnet.engine.trainer.Trainer` on the ``pretrain``-mode loader of
``TRAIN.DATASET`` (each sample holds one clip per playback speed in ``ASCNET.SPEEDS``).
Started in every process by :func:`ascnet.engine.launch.launch` (``tools/run_net.py``).
"""
import logging
from typing import Optional

from fvcore.common.config import CfgNode

from ascnet.engine.trainer import Trainer

logger = logging.getLogger(__name__)


def run_pretrain(cfg: CfgNode) -> Optional[Trainer]:
    """Pretrain ``cfg.MODEL.META_ARCH`` (ASCNet) on ``cfg.TRAIN.DATASET``.

    Returns:
        The finished trainer (None when ``TRAIN.ENABLE`` is False).
    """
    if not cfg.TRAIN.ENABLE:
        logger.info("TRAIN.ENABLE is False: nothing to do for TASK pretrain.")
        return None
    trainer = Trainer(cfg, mode="pretrain")
    trainer.train()
    return trainer
