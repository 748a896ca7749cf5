"""TASK ``retrieval``: test -> train video retrieval with the raw backbone features.

The protocol and its building blocks (features, cache, search, metrics, table) are in
:mod:`ascnet.evaluation.retrieval`, the visualisation in :mod:`ascnet.evaluation.visualization`;
this module runs them as a task in every process started by :func:`ascnet.engine.launch.launch`.
"""
import json
import logging
import os
from typing import Dict

import torch
from fvcore.common.config import CfgNode

from ascnet.evaluation.diagnostics import dataset_factors, factor_top1, format_diagnostics
from ascnet.evaluation.retrieval import (
    cached_features,
    build_retrieval_backbone,
    evaluate_retrieval,
    feature_protocol,
    finalize_features,
    format_table,
    protocol_line,
    result_chance,
)
from ascnet.evaluation.visualization import write_visualization
from ascnet.utils.distributed import is_main_process, synchronize

logger = logging.getLogger(__name__)

RANDOM_INIT_WARNING = (
    "NO CHECKPOINT GIVEN: evaluating a RANDOMLY INITIALISED backbone (seed RNG_SEED={seed}). "
    "Set RETRIEVAL.CHECKPOINT_FILE_PATH or pass --checkpoint to evaluate pretrained weights."
)


def run_retrieval(cfg: CfgNode) -> Dict[str, object]:
    """TASK ``retrieval``: test -> train video retrieval with the raw backbone features.

    Runs in every process (feature extraction is sharded, each video once); rank 0 searches,
    prints the table, writes ``OUTPUT_DIR/retrieval_split<ID>_<weights>.json`` (and the
    visualisation with ``RETRIEVAL.VISUALIZE``).

    Returns:
        The result dict (top-k accuracies, mAP, protocol, paths) on rank 0, {} elsewhere.
    """
    device = torch.device("cuda") if cfg.NUM_GPUS > 0 and torch.cuda.is_available() else torch.device("cpu")
    # No evaluation-time randomness: deterministic cuDNN kernels (no autotuned algorithm choice).
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    backbone, weights_id, report = build_retrieval_backbone(cfg)
    checkpoint_file = report.pop("file", None)
    backbone.to(device)
    if weights_id == "random-init":
        msg = RANDOM_INIT_WARNING.format(seed=cfg.RNG_SEED)
        if is_main_process():
            # Printed as a banner; logged at DEBUG, which reaches log.txt but not the console
            # (an INFO/WARNING record would print the message a second time).
            print("!" * 80 + "\n" + msg + "\n" + "!" * 80, flush=True)
            logger.debug("WARNING: %s", msg)
    protocol = feature_protocol(cfg, weights_id)
    with torch.no_grad():
        qf, ql, q_hit = cached_features(cfg, backbone, protocol, cfg.RETRIEVAL.QUERY_SPLIT, device)
        gf, gl, g_hit = cached_features(cfg, backbone, protocol, cfg.RETRIEVAL.GALLERY_SPLIT, device)
    # Every process takes part in the diagnostics' extractions (each video once).
    diagnostics = _diagnostics(cfg, backbone, checkpoint_file, device, qf, gf, ql, gl)
    if not is_main_process():
        synchronize()
        return {}
    qf, gf = finalize_features(qf, gf, cfg.RETRIEVAL.CENTER)
    search_device = device if cfg.RETRIEVAL.BACKEND == "torch" else (
        torch.device("cuda") if torch.cuda.is_available() and _faiss_gpu() else torch.device("cpu")
    )
    res = evaluate_retrieval(
        qf.to(search_device), gf.to(search_device), ql, gl, cfg.RETRIEVAL.TOPK, backend=cfg.RETRIEVAL.BACKEND,
        knn_ks=cfg.RETRIEVAL.KNN_K, knn_temperature=cfg.RETRIEVAL.KNN_TEMPERATURE,
    )
    neighbors = res.pop("neighbors")
    similarities = res.pop("similarities")
    chance = result_chance(ql, gl, cfg.RETRIEVAL.TOPK, cfg.RETRIEVAL.KNN_K)
    full_protocol = dict(protocol, center=cfg.RETRIEVAL.CENTER, backend=cfg.RETRIEVAL.BACKEND,
                         topk=list(cfg.RETRIEVAL.TOPK), checkpoint=checkpoint_file,
                         num_queries=int(qf.shape[0]), num_gallery=int(gf.shape[0]),
                         features_from_cache=bool(q_hit and g_hit))
    table = format_table(res, full_protocol, cfg.RETRIEVAL.TOPK, chance)
    factors = dataset_factors(cfg)
    if factors:
        diagnostics.update(factor_top1(neighbors, ql, gl, factors))
    if diagnostics:
        table += "\n" + format_diagnostics(diagnostics, knn_k=min(cfg.RETRIEVAL.KNN_K, default=None))
    print(table, flush=True)
    logger.debug("retrieval results:\n%s", table)  # log.txt only: the console has it from print
    tag = "random-init" if weights_id == "random-init" else weights_id.split(":")[1][:12]
    json_path = os.path.join(cfg.OUTPUT_DIR, f"retrieval_split{cfg.DATA.SPLIT_ID}_{tag}.json")
    out = {"results": res, "chance": chance, "protocol": full_protocol, "load_report": report,
           "diagnostics": diagnostics}
    if cfg.RETRIEVAL.VISUALIZE:
        vis_dir = os.path.join(cfg.OUTPUT_DIR, f"retrieval_vis_split{cfg.DATA.SPLIT_ID}_{tag}")
        summary = ", ".join(f"{k} {v:.2f}" for k, v in res.items())
        title = f"{protocol_line(full_protocol)} | {summary}"
        out["visualization"] = write_visualization(
            cfg, vis_dir, neighbors, ql, gl, title=title, num_queries=cfg.RETRIEVAL.VIS_NUM_QUERIES,
            similarities=similarities,
        )
        print(f"visualisation: {out['visualization']}", flush=True)
    from ascnet.utils.io import atomic_write_bytes

    atomic_write_bytes(json_path, json.dumps(out, indent=2, sort_keys=True).encode())
    print(f"results: {json_path}", flush=True)
    out["json"] = json_path
    out["neighbors"] = neighbors
    synchronize()
    return out


def _diagnostics(cfg, backbone, checkpoint_file, device, qf, gf, ql, gl) -> Dict[str, float]:
    """``RETRIEVAL.DIAGNOSTICS`` of the evaluated weights ({} when none are asked for); run in
    every process."""
    from ascnet.evaluation.diagnostics import load_motion_projection, measure_diagnostics
    from ascnet.evaluation.retrieval import build_retrieval_dataset

    names = list(cfg.RETRIEVAL.DIAGNOSTICS)
    if not names:
        return {}
    head = None
    if "speed" in names and checkpoint_file:
        head = load_motion_projection(cfg, checkpoint_file, backbone[0].out_dim)
        head = head.to(device) if head is not None else None
    query_ds = build_retrieval_dataset(cfg, cfg.RETRIEVAL.QUERY_SPLIT, cfg.RETRIEVAL.NUM_CLIPS, cfg.RETRIEVAL.NUM_CROPS)
    with torch.no_grad():
        return measure_diagnostics(cfg, names, backbone, device, query_ds, qf, gf, ql, gl, head)


def _faiss_gpu() -> bool:
    from ascnet.utils.search import faiss_has_gpu

    return faiss_has_gpu()
