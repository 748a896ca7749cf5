"""TASK ``pretrain``: self-supervised ASCNet pretraining.

Runs the shared :class:`ascnet.engine.trainer.Trainer` on the ``pretrain``-mode loader of
``TRAIN.DATASET`` (each sample holds one clip per playback speed in ``DATA.SPEEDS``).
Started in every process by :func:`ascnet.engine.launch.launch` (``tools/run_net.py``).

Representation monitor (``TRAIN.MONITOR_PERIOD`` epochs, 0 = off;
:mod:`ascnet.evaluation.monitor`): before the first iteration (the backbone at random init),
every ``MONITOR_PERIOD`` epochs and after the last epoch, the kNN top-1 and retrieval top-1 of
the ONLINE backbone on ``RETRIEVAL.QUERY_SPLIT -> RETRIEVAL.GALLERY_SPLIT`` go to metrics.json
and TensorBoard (``monitor_*`` keys). Every process takes part in the extraction (each video
once); rank 0 writes. At the end the first and the last measurement are printed side by side
with their chance levels and the next commands to run.
"""
import logging
from typing import Dict, List, Optional

from fvcore.common.config import CfgNode

from ascnet.engine.trainer import Trainer
from ascnet.utils import distributed as du

logger = logging.getLogger(__name__)


class PretrainTrainer(Trainer):
    """The shared loop plus the representation monitor (see the module docstring)."""

    def __init__(self, cfg: CfgNode, mode: Optional[str] = "pretrain"):
        super().__init__(cfg, mode=mode)
        self.monitor_history: List[Dict[str, float]] = []

    def run_monitor(self) -> Dict[str, float]:
        """Measure the online backbone now; write the figures (rank 0) and return them."""
        from ascnet.evaluation.monitor import format_monitor, monitor_representation

        model = du.unwrap(self.model)
        # ASCNet's motion projection g_m, read by the speed probe beside the backbone.
        motion_head = getattr(getattr(model, "online_module", None), "proj_m", None)
        values = monitor_representation(self.cfg, model.backbone, self.device, motion_head)
        values = dict(values, monitor_iteration=self.iter)
        self.monitor_history.append(values)
        if du.is_main_process():
            self.writer.write({"iteration": self.iter, "epoch": self.epoch, **values}, step=self.iter)
            logger.info("monitor at iteration %d/%d: %s", self.iter, self.max_iter, format_monitor(values))
        return values

    def before_train(self) -> None:
        super().before_train()
        if self.cfg.TRAIN.MONITOR_PERIOD > 0 and self.iter == 0:
            self.run_monitor()

    def after_epoch(self, epoch: int) -> None:
        super().after_epoch(epoch)
        period = self.cfg.TRAIN.MONITOR_PERIOD
        if period > 0 and ((epoch + 1) % period == 0 or epoch + 1 == self.cfg.SOLVER.MAX_EPOCH):
            self.run_monitor()


def summary_lines(cfg: CfgNode, first: Dict[str, float], last: Dict[str, float]) -> List[str]:
    """The side-by-side table of the monitor at random init and after pretraining."""
    from ascnet.evaluation.monitor import PREFIX

    knn = sorted((k for k in last if k.startswith(PREFIX + "knn")), key=lambda k: int(k[len(PREFIX) + 3:-5]))
    rows = [("retrieval top-1", PREFIX + "retrieval_top1", PREFIX + "chance_retrieval_top1")]
    rows += [(f"kNN top-1 (k={k[len(PREFIX) + 3:-5]})", k, PREFIX + "chance_knn_top1") for k in knn]
    rows += [("retrieval mAP", PREFIX + "mAP", None)]
    # Motion diagnostics (TRAIN.MONITOR_DIAGNOSTICS) and per-factor top-1, when measured.
    rows += [(label, PREFIX + key, None) for label, key in (
        ("shuffle drop", "shuffle_drop_top1"), ("repeat drop", "repeat_drop_top1"),
        ("speed probe", "speed_probe_top1"), ("speed (g_m)", "motion_projection_speed_probe_top1"))
        if PREFIX + key in last and PREFIX + key in first]
    rows += [(f"{k[len(PREFIX) + 7:-5]} top-1", k, k[:-5] + "_chance") for k in sorted(last)
             if k.startswith(PREFIX + "factor_") and k.endswith("_top1") and k in first]
    start = "random init" if int(first.get(PREFIX + "iteration", 0)) == 0 else f"iteration {int(first[PREFIX + 'iteration'])}"
    head = f"{'':<18}{start:>13}{'pretrained':>13}{'gain':>8}{'chance':>9}"
    lines = [
        f"Representation of the online encoder, {cfg.RETRIEVAL.QUERY_SPLIT} -> {cfg.RETRIEVAL.GALLERY_SPLIT} videos "
        f"of {cfg.TEST.DATASET} split {cfg.DATA.SPLIT_ID} ({cfg.TRAIN.MONITOR_NUM_CLIPS} clips per video, "
        f"after {int(last.get(PREFIX + 'iteration', 0))} iterations):",
        head,
    ]
    for name, key, chance_key in rows:
        c = f"{last[chance_key]:9.1f}" if chance_key else f"{'-':>9}"
        lines.append(f"{name:<18}{first[key]:13.1f}{last[key]:13.1f}{last[key] - first[key]:+8.1f}{c}")
    return lines


def run_pretrain(cfg: CfgNode) -> Optional[Trainer]:
    """Pretrain ``cfg.MODEL.META_ARCH`` (ASCNet) on ``cfg.TRAIN.DATASET``.

    Returns:
        The finished trainer (None when ``TRAIN.ENABLE`` is False).
    """
    if not cfg.TRAIN.ENABLE:
        logger.info("TRAIN.ENABLE is False: nothing to do for TASK pretrain.")
        return None
    trainer = PretrainTrainer(cfg, mode="pretrain")
    trainer.train()
    if du.is_main_process() and cfg.TRAIN.MONITOR_PERIOD > 0:
        from ascnet.evaluation.monitor import read_monitor_records

        records = read_monitor_records(cfg.OUTPUT_DIR)  # includes the measurements of earlier (resumed) runs
        if len(records) >= 2:
            lines = summary_lines(cfg, records[0], records[-1])
            lines += [
                "Next: the linear protocol, fine-tuning and full retrieval (10 clips, HTML page) of this encoder:",
                f"  python tools/run_net.py --cfg configs/Synthetic/linear_quickstart.yaml TRAIN.CHECKPOINT_FILE_PATH {cfg.OUTPUT_DIR}",
                f"  python tools/run_net.py --cfg configs/Synthetic/finetune_quickstart.yaml TRAIN.CHECKPOINT_FILE_PATH {cfg.OUTPUT_DIR}",
                f"  python tools/eval_retrieval.py --cfg configs/Synthetic/retrieval_quickstart.yaml --checkpoint {cfg.OUTPUT_DIR} --visualize",
            ]
            print("\n".join(lines), flush=True)
    return trainer
