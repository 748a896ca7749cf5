"""Representation monitor: kNN and retrieval top-1 of an encoder during pretraining.

``TRAIN.MONITOR_PERIOD`` epochs (0 = off): the current ONLINE backbone extracts the video
features of ``RETRIEVAL.QUERY_SPLIT`` and ``RETRIEVAL.GALLERY_SPLIT`` with the retrieval
protocol (:mod:`ascnet.evaluation.retrieval`: uniformly spaced centre clips, mean of the
L2-normalised clip features, cosine similarity), but with ``TRAIN.MONITOR_NUM_CLIPS`` clips per
video (fewer than ``RETRIEVAL.NUM_CLIPS``, to stay cheap) and without the feature cache (the
weights change). Extraction is sharded over the processes, each video exactly once
(:func:`ascnet.evaluation.inference.inference_on_dataset`); every rank gets the same gathered
features and computes the same figures.

Reported (percent): ``monitor_retrieval_top1``, ``monitor_mAP`` and ``monitor_knn<k>_top1`` for k in
``RETRIEVAL.KNN_K`` (:mod:`ascnet.evaluation.knn`), with their chance levels; the motion
diagnostics of ``TRAIN.MONITOR_DIAGNOSTICS`` (:mod:`ascnet.evaluation.diagnostics`, e.g.
``monitor_shuffle_drop_top1``) and, on a dataset whose classes have factors, the per-factor
top-1 (``monitor_factor_direction_top1``...).
"""
import logging
from typing import Dict, List, Optional

import torch
from fvcore.common.config import CfgNode

from .diagnostics import dataset_factors, factor_top1, measure_diagnostics
from .knn import classification_chance_top1, retrieval_chance
from .retrieval import build_retrieval_dataset, evaluate_retrieval, extract_video_features, finalize_features

logger = logging.getLogger(__name__)

PREFIX = "monitor_"


@torch.no_grad()
def monitor_representation(
    cfg: CfgNode, backbone: torch.nn.Module, device: torch.device, motion_head: Optional[torch.nn.Module] = None
) -> Dict[str, float]:
    """kNN top-1 and retrieval top-1 / mAP of ``backbone`` on the configured splits.

    Args:
        cfg: the run config (``RETRIEVAL.*``, ``TRAIN.MONITOR_NUM_CLIPS``, ``TEST.DATASET``).
        backbone: (N, C, T, H, W) -> (N, D); put in eval mode here and restored afterwards.
        device: where the clips go.
        motion_head: the ASCNet motion projection, read by the speed probe too (optional).

    Returns:
        ``{"monitor_retrieval_top1", "monitor_mAP", "monitor_knn<k>_top1", ...,
        "monitor_chance_retrieval_top1", "monitor_chance_knn_top1"}`` (%), the same on every rank.
    """
    clips = int(cfg.TRAIN.MONITOR_NUM_CLIPS)
    modules = [m for m in (backbone, motion_head) if m is not None]
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        feats, datasets = {}, {}
        for split in (cfg.RETRIEVAL.QUERY_SPLIT, cfg.RETRIEVAL.GALLERY_SPLIT):
            datasets[split] = build_retrieval_dataset(cfg, split, clips, 1)
            feats[split] = extract_video_features(
                backbone, datasets[split], cfg.RETRIEVAL.BATCH_SIZE, num_workers=cfg.DATA_LOADER.NUM_WORKERS, device=device
            )
        (qf, ql), (gf, gl) = feats[cfg.RETRIEVAL.QUERY_SPLIT], feats[cfg.RETRIEVAL.GALLERY_SPLIT]
        diagnostics = measure_diagnostics(
            cfg, list(cfg.TRAIN.MONITOR_DIAGNOSTICS), backbone, device, datasets[cfg.RETRIEVAL.QUERY_SPLIT],
            qf, gf, ql, gl, motion_head,
        ) if cfg.TRAIN.MONITOR_DIAGNOSTICS else {}
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)
    qf, gf = finalize_features(qf, gf, cfg.RETRIEVAL.CENTER)
    res = evaluate_retrieval(qf, gf, ql, gl, topk=(1,), backend="torch", knn_ks=cfg.RETRIEVAL.KNN_K,
                             knn_temperature=cfg.RETRIEVAL.KNN_TEMPERATURE)
    chance = retrieval_chance(ql, gl, (1,))
    num_classes = int(max(int(gl.max()), int(ql.max())) + 1)
    out = {PREFIX + "retrieval_top1": float(res["top1"]), PREFIX + "mAP": float(res["mAP"])}
    out.update({PREFIX + k: float(v) for k, v in res.items() if k.startswith("knn")})
    out[PREFIX + "chance_retrieval_top1"] = chance["top1"]
    out[PREFIX + "chance_knn_top1"] = classification_chance_top1(num_classes)
    factors = dataset_factors(cfg)
    if factors:
        diagnostics.update(factor_top1(res["neighbors"], ql, gl, factors))
    out.update({PREFIX + k: float(v) for k, v in diagnostics.items()})
    return out


def format_monitor(values: Dict[str, float]) -> str:
    """One line: ``retrieval top1 31.2 (chance 12.5)  kNN20 top1 ...``."""
    parts = [f"retrieval top1 {values[PREFIX + 'retrieval_top1']:.1f} (chance {values[PREFIX + 'chance_retrieval_top1']:.1f})"]
    for k in sorted((k for k in values if k.startswith(PREFIX + "knn")), key=lambda k: int(k[len(PREFIX) + 3:-5])):
        parts.append(f"kNN{k[len(PREFIX) + 3:-5]} top1 {values[k]:.1f} (chance {values[PREFIX + 'chance_knn_top1']:.1f})")
    parts.append(f"mAP {values[PREFIX + 'mAP']:.1f}")
    for k in ("shuffle_drop_top1", "repeat_drop_top1"):
        if PREFIX + k in values:
            parts.append(f"{k.split('_')[0]} drop {values[PREFIX + k]:+.1f}")
    return "  ".join(parts)


def read_monitor_records(output_dir: str) -> List[Dict[str, float]]:
    """The monitor measurements of a run, in the order written to ``OUTPUT_DIR/metrics.json``
    (a resumed run appends; a measurement replayed at the same iteration replaces the earlier one)."""
    import json
    import os

    from iopath.common.file_io import g_pathmgr

    path = os.path.join(output_dir, "metrics.json")
    by_iter: Dict[int, Dict[str, float]] = {}
    if not g_pathmgr.exists(path):
        return []
    with g_pathmgr.open(path, "r") as f:
        for line in f:
            if PREFIX + "retrieval_top1" in line:
                rec = json.loads(line)
                by_iter.pop(int(rec["iteration"]), None)
                by_iter[int(rec["iteration"])] = rec
    return [by_iter[k] for k in sorted(by_iter)]
