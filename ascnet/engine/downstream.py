"""Downstream tasks: fine-tuning, the linear protocol, multi-view testing (method.md section 2).

- ``run_finetune(cfg)``: Classifier (backbone from ``TRAIN.CHECKPOINT_FILE_PATH``, a checkpoint
  file or a pretraining run's OUTPUT_DIR; projections dropped; random init when empty), every layer trained with the ``FINETUNE.*`` recipe, then
  tested when ``TEST.ENABLE``.
- ``run_linear(cfg)``: the same with a frozen backbone (``requires_grad=False``, BatchNorm in
  eval mode for the whole run) and the ``LINEAR.*`` recipe of the supplementary (100 epochs,
  lr 0.1, SGD, weight decay 0); only the linear layer is given to the optimiser.
- ``run_test(cfg)``: multi-view testing of a trained classifier (``TEST.CHECKPOINT_FILE_PATH``,
  else the last checkpoint in ``OUTPUT_DIR``): ``TEST.NUM_ENSEMBLE_VIEWS`` uniformly spaced clips
  x ``TEST.NUM_SPATIAL_CROPS`` crops per video, softmax averaged per video, top-1 / top-5 over
  every video of the split exactly once (checked), written to
  ``OUTPUT_DIR/test_results_split<DATA.SPLIT_ID>.json``.

Task recipes: ``run_linear`` / ``run_finetune`` copy ``LINEAR.*`` / ``FINETUNE.*`` (BASE_LR,
WEIGHT_DECAY, MAX_EPOCH, WARMUP_EPOCHS) into ``SOLVER.*`` before anything is built, so each
task has its own defaults from one defaults file; set the task's keys to change them.
"""
import json
import logging
import os
from typing import Dict, Optional

import torch
from fvcore.common.config import CfgNode

from ascnet.engine.trainer import Trainer
from ascnet.evaluation.inference import inference_on_dataset
from ascnet.evaluation.metrics import classification_topk
from ascnet.modeling.meta_arch import classifier as _classifier  # noqa: F401  (registers Classifier)
from ascnet.utils.distributed import is_main_process

logger = logging.getLogger(__name__)

# Keys each downstream task copies into SOLVER.* (task group -> SOLVER key of the same name).
RECIPE_KEYS = ("BASE_LR", "WEIGHT_DECAY", "MAX_EPOCH", "WARMUP_EPOCHS")
TEST_RESULTS = "test_results_split{split_id}.json"


class DownstreamError(ValueError):
    """A downstream run is misconfigured; the message says which key to change."""


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------
def apply_task_recipe(cfg: CfgNode, task: str) -> CfgNode:
    """Return a copy of ``cfg`` with ``MODEL.META_ARCH = Classifier`` and the task's recipe.

    Args:
        cfg: the run config.
        task: "linear" (copies ``LINEAR.*``) or "finetune" (``FINETUNE.*``) into ``SOLVER.*``.

    Returns:
        A new frozen config; ``cfg`` is not modified.
    """
    from ascnet.config import get_cfg

    group = {"linear": "LINEAR", "finetune": "FINETUNE"}[task]
    defaults = get_cfg().SOLVER
    out = cfg.clone()
    out.defrost()
    out.TASK = task
    if out.MODEL.META_ARCH != "Classifier":
        logger.info("TASK %s: MODEL.META_ARCH %s -> Classifier.", task, out.MODEL.META_ARCH)
        out.MODEL.META_ARCH = "Classifier"
    for key in RECIPE_KEYS:
        if cfg.SOLVER[key] != defaults[key] and cfg.SOLVER[key] != cfg[group][key]:
            logger.warning(
                "TASK %s ignores SOLVER.%s=%s and uses %s.%s=%s; set %s.%s to change it.",
                task, key, cfg.SOLVER[key], group, key, cfg[group][key], group, key,
            )
        out.SOLVER[key] = cfg[group][key]
    out.freeze()
    return out


def _device(cfg: CfgNode) -> torch.device:
    if cfg.NUM_GPUS > 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ------------------------------------------------------------------------------------------------
# Testing
# ------------------------------------------------------------------------------------------------
def build_test_dataset(cfg: CfgNode, split: Optional[str] = None):
    """The test-mode dataset of ``split`` (default ``TEST.SPLIT``) with the ``TEST`` view counts."""
    from ascnet.data import build_dataset

    return build_dataset(cfg, split or cfg.TEST.SPLIT, "test")


def evaluate_classifier(cfg: CfgNode, model: torch.nn.Module, dataset=None, split: Optional[str] = None) -> Dict:
    """Multi-view evaluation: top-1 / top-5 (%) over every video of the split exactly once.

    Args:
        cfg: the run config (``TEST.*``, ``DATA_LOADER.NUM_WORKERS``).
        model: a Classifier (possibly DDP-wrapped); put in eval mode here, restored after.
        dataset: test-mode dataset; default ``build_test_dataset(cfg, split)``.

    Returns:
        ``{"top1", "top5", "num_videos", "num_views"}`` on every rank.
    """
    from ascnet.utils.distributed import unwrap

    net = unwrap(model)
    ds = dataset if dataset is not None else build_test_dataset(cfg, split)
    check_num_classes(cfg, ds)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        with torch.no_grad():
            out = inference_on_dataset(
                lambda b: {"probs": net(b)["probs"]},
                ds,
                cfg.TEST.BATCH_SIZE,
                num_workers=cfg.DATA_LOADER.NUM_WORKERS,
                device=device,
                log_period=cfg.LOG_PERIOD,
            )
    finally:
        net.train(was_training)
    res = classification_topk(out["probs"], out["label"], ks=(1, 5))
    res["num_views"] = int(getattr(ds, "num_views", cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS))
    return res


def check_num_classes(cfg: CfgNode, dataset) -> None:
    """Raise DownstreamError when ``MODEL.NUM_CLASSES`` differs from the dataset's class count."""
    n = getattr(dataset, "num_classes", None)
    if n is not None and int(n) != int(cfg.MODEL.NUM_CLASSES):
        raise DownstreamError(
            f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES} but the {type(dataset).__name__} dataset has {n} "
            f"classes. Set MODEL.NUM_CLASSES {n}."
        )


def load_classifier_checkpoint(model: torch.nn.Module, path_or_checkpoint, name: str = "") -> None:
    """Load a trained classifier (backbone AND linear layer) for testing.

    Args:
        model: a Classifier.
        path_or_checkpoint: checkpoint path, or a checkpoint dict already read.
        name: the checkpoint's path for messages (when a dict is given).

    Raises:
        DownstreamError: the checkpoint holds no classifier head (e.g. a pretraining checkpoint).
    """
    from ascnet.utils.checkpoint import Checkpointer, load_model_state_dict

    if isinstance(path_or_checkpoint, str):
        path, data = path_or_checkpoint, Checkpointer.read(path_or_checkpoint)
    else:
        path, data = name or "the checkpoint", path_or_checkpoint
    state = data.get("model", data)
    if not any(k.split(".")[0] == "head" or ".head." in k for k in state):
        raise DownstreamError(
            f"{path!r} holds no classifier head (keys like {list(state)[:3]}): it is not a fine-tuned or "
            "linear-protocol checkpoint. Train one first (TASK finetune / linear) or give its path in "
            "TEST.CHECKPOINT_FILE_PATH."
        )
    load_model_state_dict(model, state, strict=True)


def _test_checkpoint(cfg: CfgNode) -> str:
    if cfg.TEST.CHECKPOINT_FILE_PATH:
        from ascnet.evaluation.paths import resolve_checkpoint_path

        return resolve_checkpoint_path(cfg.TEST.CHECKPOINT_FILE_PATH, "TEST.CHECKPOINT_FILE_PATH")
    from ascnet.utils.checkpoint import Checkpointer

    path = Checkpointer(cfg.OUTPUT_DIR, torch.nn.Identity()).find_resume_checkpoint(repair=False)
    if not path:
        raise DownstreamError(
            f"TASK test needs weights: TEST.CHECKPOINT_FILE_PATH is empty and {cfg.OUTPUT_DIR!r} holds no "
            "readable checkpoint. Give TEST.CHECKPOINT_FILE_PATH or the OUTPUT_DIR of a finetune/linear run."
        )
    return path


def write_test_results(cfg: CfgNode, res: Dict, checkpoint: str = "", extra: Optional[Dict] = None) -> str:
    """Write the test results with their protocol to ``OUTPUT_DIR/test_results_split<ID>.json``.

    ``extra``: more protocol entries (the cached probe's mode, L2 and sweep)."""
    from ascnet.utils.io import atomic_write_bytes

    payload = {
        "results": {k: res[k] for k in ("top1", "top5", "num_videos")},
        "chance": {"top1": 100.0 / max(int(cfg.MODEL.NUM_CLASSES), 1),
                   "top5": 100.0 * min(5, int(cfg.MODEL.NUM_CLASSES)) / max(int(cfg.MODEL.NUM_CLASSES), 1)},
        "protocol": {
            "dataset": cfg.TEST.DATASET,
            "split_id": cfg.DATA.SPLIT_ID,
            "split": cfg.TEST.SPLIT,
            "clips": cfg.TEST.NUM_ENSEMBLE_VIEWS,
            "crops": cfg.TEST.NUM_SPATIAL_CROPS,
            "views": res.get("num_views"),
            "aggregation": "softmax averaged over views",
            "checkpoint": checkpoint,
            **(extra or {}),
        },
    }
    path = os.path.join(cfg.OUTPUT_DIR, TEST_RESULTS.format(split_id=cfg.DATA.SPLIT_ID))
    atomic_write_bytes(path, json.dumps(payload, indent=2, sort_keys=True).encode())
    return path


def _report(cfg: CfgNode, res: Dict, checkpoint: str, label: str = "TEST", extra: Optional[Dict] = None) -> None:
    if not is_main_process():
        return
    path = write_test_results(cfg, res, checkpoint, extra)
    k = max(int(cfg.MODEL.NUM_CLASSES), 1)
    line = (
        f"{label} {cfg.TEST.DATASET} split{cfg.DATA.SPLIT_ID} ({cfg.TEST.SPLIT}, {res['num_videos']} videos, "
        f"{cfg.TEST.NUM_ENSEMBLE_VIEWS} clips x {cfg.TEST.NUM_SPATIAL_CROPS} crops, softmax averaged): "
        f"top1 {res['top1']:.2f}  top5 {res['top5']:.2f}  (chance: top1 {100.0 / k:.2f}, top5 {100.0 * min(5, k) / k:.2f})"
    )
    # Printed once (the console); log.txt keeps it at DEBUG level with the file written.
    logger.debug("%s -> %s", line, path)
    print(f"{line}\n  results: {path}", flush=True)


def run_test(cfg: CfgNode) -> Dict:
    """TASK ``test``: multi-view testing of a trained classifier (see the module docstring).

    Returns:
        ``{"top1", "top5", "num_videos", "num_views"}``.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.META_ARCH = "Classifier"
    cfg.freeze()
    # Same numbers on every run: deterministic cuDNN kernels (no autotuned algorithm choice).
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    path = _test_checkpoint(cfg)
    from ascnet.utils.checkpoint import Checkpointer

    state = Checkpointer.read(path)
    state = state.get("model", state)
    # A linear-protocol checkpoint holds the feature standardisation (LINEAR.FEATURE_NORM bn).
    has_norm = any(k.startswith("feat_norm.") for k in state)
    model = _classifier.Classifier(cfg, freeze_backbone=False, feature_norm="bn" if has_norm else "none")
    load_classifier_checkpoint(model, {"model": state}, name=path)
    model.to(_device(cfg))
    res = evaluate_classifier(cfg, model)
    _report(cfg, res, path)
    return res


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
class DownstreamTrainer(Trainer):
    """The shared training loop with a Classifier: backbone-only initial weights, and
    multi-view evaluation every ``TRAIN.EVAL_PERIOD`` epochs.

    Args:
        cfg: the run config (after :func:`apply_task_recipe`).
        freeze_backbone: the linear protocol (frozen backbone) rather than fine-tuning.
    """

    def __init__(self, cfg: CfgNode, freeze_backbone: bool = False):
        self.freeze_backbone = bool(freeze_backbone)
        super().__init__(cfg)

    def build_model(self, cfg: CfgNode) -> torch.nn.Module:
        return _classifier.Classifier(cfg, freeze_backbone=self.freeze_backbone)

    def load_initial_weights(self, path: str):
        from ascnet.evaluation.paths import resolve_checkpoint_path
        from ascnet.utils.distributed import unwrap

        path = resolve_checkpoint_path(path, "TRAIN.CHECKPOINT_FILE_PATH")
        logger.info("Backbone weights from %s (projections and predictors dropped).", path)
        return unwrap(self.model).load_pretrained(path)

    def before_train(self):
        super().before_train()
        from ascnet.utils.distributed import unwrap

        net = unwrap(self.model)
        if getattr(net, "freeze_backbone", False) and isinstance(net.feat_norm, torch.nn.BatchNorm1d):
            if self.iter == 0:  # a resumed run has the statistics in its checkpoint
                mean, var = feature_statistics(net, self.train_loader, self.device, prepare=self.prepare_batch)
                net.set_feature_statistics(mean, var)
                logger.info("Linear protocol: feature standardisation fixed to the statistics of one pass over "
                            "the training clips (mean |mean| %.4g, mean std %.4g).",
                            float(mean.abs().mean()), float(var.sqrt().mean()))
            else:
                net.set_feature_statistics()

    def after_epoch(self, epoch: int):
        out = super().after_epoch(epoch)
        period = self.cfg.TRAIN.EVAL_PERIOD
        if period and (epoch + 1) % period == 0:
            r = evaluate_classifier(self.cfg, self.model)
            if is_main_process():
                logger.info("epoch %d: test top1 %.2f top5 %.2f", epoch + 1, r["top1"], r["top5"])
                # metrics.json / TensorBoard: test_top1, test_top5 at this iteration.
                self.writer.write(
                    {"iteration": self.iter, "epoch": epoch, "test_top1": r["top1"], "test_top5": r["top5"]},
                    step=self.iter,
                )
        return out


def _train_then_test(cfg: CfgNode, task: str) -> Dict:
    cfg = apply_task_recipe(cfg, task)
    res: Dict = {}
    if cfg.TRAIN.ENABLE:
        if not cfg.TRAIN.CHECKPOINT_FILE_PATH:
            logger.warning(
                "TASK %s: TRAIN.CHECKPOINT_FILE_PATH is empty: the backbone starts from RANDOM weights.", task
            )
        trainer = DownstreamTrainer(cfg, freeze_backbone=task == "linear")
        trainer.train()
        model = trainer.model
    else:
        model = None
    if cfg.TEST.ENABLE:
        if model is None:
            res = run_test(cfg)
        else:
            from ascnet.utils.checkpoint import Checkpointer

            path = Checkpointer(cfg.OUTPUT_DIR, torch.nn.Identity()).get_checkpoint_file()
            res = evaluate_classifier(cfg, model)
            _report(cfg, res, path)
    return res


@torch.no_grad()
def feature_statistics(model, loader, device, prepare=None) -> "tuple":
    """Mean and (biased) variance of the frozen backbone features over one pass of ``loader``
    (every process's share, summed over processes).

    Args:
        prepare: batch -> batch on ``device`` with float clips (the trainer's
            :meth:`~ascnet.engine.trainer.Trainer.prepare_batch`, which applies the device-side
            augmentation); default: move the clips to ``device``.

    Returns:
        (mean (D,), var (D,)) float32 on ``device``.
    """
    from ascnet.utils import distributed as du

    total, total_sq, count = None, None, torch.zeros((), dtype=torch.float64, device=device)
    for batch in loader:
        clips = prepare(batch)["clips"] if prepare is not None else batch["clips"].to(device)
        if clips.ndim == 6:
            clips = clips.flatten(0, 1)
        f = model.backbone(clips).double()
        total = f.sum(0) if total is None else total + f.sum(0)
        total_sq = f.pow(2).sum(0) if total_sq is None else total_sq + f.pow(2).sum(0)
        count += f.shape[0]
    if du.get_world_size() > 1:
        import torch.distributed as dist

        for t in (total, total_sq, count):
            dist.all_reduce(t)
    mean = total / count
    var = (total_sq / count - mean.pow(2)).clamp(min=0)
    return mean.float(), var.float()


def run_finetune(cfg: CfgNode) -> Dict:
    """TASK ``finetune``: train every layer with the ``FINETUNE.*`` recipe, then test."""
    return _train_then_test(cfg, "finetune")


def run_linear(cfg: CfgNode) -> Dict:
    """TASK ``linear``: frozen backbone, then test. ``LINEAR.MODE sgd`` trains the linear layer
    on decoded clips with the ``LINEAR.*`` recipe; ``cached`` fits it on cached features
    (:func:`run_linear_cached`)."""
    mode = cfg.LINEAR.MODE
    if mode == "cached":
        return run_linear_cached(cfg)
    if mode != "sgd":
        raise DownstreamError(f"LINEAR.MODE is {mode!r}; choose 'sgd' (the paper's recipe) or 'cached'.")
    return _train_then_test(cfg, "linear")


# ------------------------------------------------------------------------------------------------
# The cached linear probe (LINEAR.MODE cached)
# ------------------------------------------------------------------------------------------------
def run_linear_cached(cfg: CfgNode) -> Dict:
    """``TASK linear`` with ``LINEAR.MODE cached``: the linear protocol on cached features.

    The frozen backbone (``TRAIN.CHECKPOINT_FILE_PATH``; random init when empty, seeded with
    RNG_SEED) extracts the features of ``LINEAR.CACHED_TRAIN_CLIPS`` x ``CACHED_TRAIN_CROPS``
    deterministic views of every training video and of the ``TEST.*`` views of every test video,
    once (cached, keyed by the checkpoint's sha256). A multinomial logistic regression is fitted
    to convergence by L-BFGS on the device, its L2 chosen among ``LINEAR.CACHED_L2`` on held-out
    training videos (:mod:`ascnet.evaluation.linear_probe`); the test is the softmax averaged
    over the test views, as in the ``sgd`` mode, written to the same
    ``OUTPUT_DIR/test_results_split<k>.json``; the probe is saved as a Classifier checkpoint
    (``checkpoint_final``), which ``TASK test`` accepts.

    Returns:
        ``{"top1", "top5", "num_videos", "num_views", "l2", "sweep"}``.
    """
    from iopath.common.file_io import g_pathmgr

    from ascnet.evaluation.cached_probe import evaluate_cached_probe
    from ascnet.evaluation.retrieval import file_sha256
    from ascnet.utils.checkpoint import Checkpointer
    from ascnet.utils.logging import setup_logging

    cfg = apply_task_recipe(cfg, "linear")
    setup_logging(cfg.OUTPUT_DIR)
    device = _device(cfg)
    torch.manual_seed(cfg.RNG_SEED)  # random init is reproducible too
    model = _classifier.Classifier(cfg, freeze_backbone=True, feature_norm="bn")
    path = cfg.TRAIN.CHECKPOINT_FILE_PATH
    if path:
        from ascnet.evaluation.paths import resolve_checkpoint_path

        path = resolve_checkpoint_path(path, "TRAIN.CHECKPOINT_FILE_PATH")
        model.load_pretrained(path)
        weights_id = "sha256:" + file_sha256(path)
    else:
        logger.warning("TASK linear: TRAIN.CHECKPOINT_FILE_PATH is empty: the backbone starts from RANDOM weights.")
        weights_id = "random-init"
    model.to(device).eval()
    lin = cfg.LINEAR
    res, probe = evaluate_cached_probe(cfg, model.backbone, weights_id, device,
                                       check_dataset=lambda ds: check_num_classes(cfg, ds))
    # The probe as a Classifier: BatchNorm1d(affine=False) statistics and the linear layer.
    with torch.no_grad():
        model.feat_norm.running_mean.copy_(probe["mean"])
        model.feat_norm.running_var.copy_(probe["var"])
        model.head.fc.weight.copy_(probe["weight"])
        model.head.fc.bias.copy_(probe["bias"])
    ckpt = ""
    if is_main_process():
        g_pathmgr.mkdirs(cfg.OUTPUT_DIR)
        ckpt = Checkpointer(cfg.OUTPUT_DIR, model).save("checkpoint_final", cfg=cfg.dump())
    sweep = {f"{k:g}": v for k, v in probe["sweep"].items()}
    logger.info("Cached probe: L2 %g chosen (held-out top-1 per L2: %s), training loss %.4f after %d L-BFGS iterations.",
                probe["l2"], sweep, probe["train_loss"], probe["iterations"])
    extra = {"linear_mode": "cached", "train_views": [int(lin.CACHED_TRAIN_CLIPS), int(lin.CACHED_TRAIN_CROPS)],
             "l2": probe["l2"], "l2_sweep_heldout_top1": sweep, "train_loss": probe["train_loss"],
             "weights": weights_id}
    _report(cfg, res, ckpt or "", label="LINEAR (cached probe)", extra=extra)
    res.update(l2=probe["l2"], sweep=probe["sweep"], train_loss=probe["train_loss"])
    return res
