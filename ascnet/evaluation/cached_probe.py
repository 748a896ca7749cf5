"""The cached linear probe's evaluation: frozen per-view features of every video (cached) and
the probe fitted and tested on them (``LINEAR.MODE cached``).

The task around it (the ``LINEAR.*`` recipe, the weights, the Classifier checkpoint and the
results file) is :func:`ascnet.engine.downstream.run_linear_cached`; the fit itself is
:mod:`ascnet.evaluation.linear_probe`.
"""
import logging
import os
from typing import Callable, Dict, Optional, Tuple

import torch
from fvcore.common.config import CfgNode

from .feature_cache import load_or_extract_features
from .inference import inference_on_dataset
from .linear_probe import fit_probe, standardise, video_probs
from .metrics import classification_topk
from .retrieval import build_retrieval_dataset, feature_protocol

logger = logging.getLogger(__name__)


def probe_features(
    cfg: CfgNode,
    backbone: torch.nn.Module,
    weights_id: str,
    split: str,
    clips: int,
    crops: int,
    device,
    check_dataset: Optional[Callable] = None,
) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """Raw frozen features of every view of every video of ``split``, cached under
    ``LINEAR.CACHE_DIR`` by the checkpoint's sha256 and every key that defines them.

    The views are not pooled before the gather: the probe trains on each view and averages its
    softmax over a video's views at test time.

    Args:
        backbone: (N, C, T, H, W) -> (N, D), frozen, in eval mode.
        weights_id: ``"sha256:<hex>"`` of the checkpoint file, or ``"random-init"``.
        clips, crops: deterministic views per video (V = clips x crops).
        check_dataset: called with the dataset before an extraction (e.g. its class count).

    Returns:
        (N, V, D) float32 features, (N,) int64 labels, True when read from the cache.
    """
    protocol = dict(feature_protocol(cfg, weights_id), split=split, num_clips=int(clips), num_crops=int(crops),
                    per_view=True, query_split=None, gallery_split=None, pooling=None)

    def extract():
        ds = build_retrieval_dataset(cfg, split, clips, crops)
        if check_dataset is not None:
            check_dataset(ds)

        def fn(batch):
            x = batch["clips"]  # (N, V, C, T, H, W)
            n, v = x.shape[:2]
            return {"feats": backbone(x.flatten(0, 1)).view(n, v, -1)}

        out = inference_on_dataset(fn, ds, cfg.TEST.BATCH_SIZE, num_workers=cfg.DATA_LOADER.NUM_WORKERS,
                                   device=device)
        return out["feats"], out["label"]

    cache_dir = cfg.LINEAR.CACHE_DIR or os.path.join(cfg.OUTPUT_DIR, "linear_cache")
    return load_or_extract_features(cache_dir, protocol, split, cfg.LINEAR.USE_CACHE, "LINEAR.CACHE_DIR", extract)


@torch.no_grad()
def _features(cfg, backbone, weights_id, device, check_dataset):
    lin = cfg.LINEAR
    tr = probe_features(cfg, backbone, weights_id, cfg.TRAIN.SPLIT, lin.CACHED_TRAIN_CLIPS,
                        lin.CACHED_TRAIN_CROPS, device, check_dataset)
    te = probe_features(cfg, backbone, weights_id, cfg.TEST.SPLIT, cfg.TEST.NUM_ENSEMBLE_VIEWS,
                        cfg.TEST.NUM_SPATIAL_CROPS, device, check_dataset)
    return tr, te


def evaluate_cached_probe(
    cfg: CfgNode, backbone: torch.nn.Module, weights_id: str, device, check_dataset: Optional[Callable] = None
) -> Tuple[Dict, Dict]:
    """Fit the probe on the training views' features and test it on the ``TEST.*`` views.

    ``LINEAR.CACHED_TRAIN_CLIPS`` x ``CACHED_TRAIN_CROPS`` views of every training video and the
    ``TEST.*`` views of every test video; L2 chosen among ``LINEAR.CACHED_L2`` on held-out
    training videos (:func:`ascnet.evaluation.linear_probe.fit_probe`); the test is the softmax
    averaged over a video's views.

    Returns:
        (``{"top1", "top5", "num_videos", "num_views"}``, the fitted probe of ``fit_probe``:
        ``mean``, ``var``, ``weight``, ``bias``, ``l2``, ``sweep``, ``train_loss``, ...).
    """
    lin = cfg.LINEAR
    (tr_x, tr_y, tr_hit), (te_x, te_y, te_hit) = _features(cfg, backbone, weights_id, device, check_dataset)
    logger.info("Cached probe: features of %d training videos x %d views and %d test videos x %d views (%s).",
                tr_x.shape[0], tr_x.shape[1], te_x.shape[0], te_x.shape[1],
                "from the cache" if tr_hit and te_hit else "extracted")
    probe = fit_probe(tr_x.to(device), tr_y, int(cfg.MODEL.NUM_CLASSES), list(lin.CACHED_L2),
                      val_fraction=float(lin.CACHED_VAL_FRACTION), seed=int(cfg.RNG_SEED),
                      max_iter=int(lin.CACHED_MAX_ITER))
    with torch.no_grad():
        probs = video_probs(standardise(te_x.to(device), probe["mean"], probe["var"]), probe["weight"], probe["bias"])
    res = classification_topk(probs.cpu(), te_y, ks=(1, 5))
    res["num_views"] = int(te_x.shape[1])
    return res, probe
