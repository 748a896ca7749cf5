"""Video retrieval evaluation (method.md section 2; supplementary Table 1).

Protocol (every key is printed beside every result):

- features: the raw backbone output (no linear layer; Table 1's identity), D = 512 for R3D18;
- video feature: the mean of the L2-normalised clip features over ``RETRIEVAL.NUM_CLIPS``
  uniformly spaced clips x ``RETRIEVAL.NUM_CROPS`` crops; optionally centred (the gallery mean
  is subtracted from queries and gallery, ``RETRIEVAL.CENTER``); then L2-normalised;
- each video of ``RETRIEVAL.QUERY_SPLIT`` (test) is a query against every video of
  ``RETRIEVAL.GALLERY_SPLIT`` (train) of split ``DATA.SPLIT_ID``; cosine similarity;
- top-k accuracy for k in ``RETRIEVAL.TOPK``: a query is correct when ANY of its k nearest
  gallery videos has its class;
- mAP: see :func:`ascnet.evaluation.metrics.retrieval_map` (full ranked gallery, ties by
  gallery index).

Search runs with faiss (a GPU index when the faiss build and a GPU are available, CPU
otherwise) or with torch (``RETRIEVAL.BACKEND: torch``); both return the same neighbours,
in the same order: decreasing similarity, ties broken by increasing gallery index.

The task itself (``TASK retrieval``) is :func:`ascnet.engine.retrieval.run_retrieval`; the
visualisation of its neighbours is :mod:`ascnet.evaluation.visualization`.

Features are cached under ``RETRIEVAL.CACHE_DIR`` (:mod:`ascnet.evaluation.feature_cache`) by
the sha256 of the checkpoint FILE CONTENT and every key that defines the features, so a changed
checkpoint never reuses stale features.
"""
import hashlib
import logging
import os
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr

from ascnet.utils.search import knn

from .feature_cache import load_or_extract_features
from .inference import inference_on_dataset
from .metrics import retrieval_map, retrieval_topk_from_neighbors

logger = logging.getLogger(__name__)

# The values of RETRIEVAL.POOLING: how the clip features of a video are pooled.
POOLINGS = ("mean",)



# ------------------------------------------------------------------------------------------------
# Search (ascnet.utils.search.knn: deterministic exact top-k, faiss or torch)
# ------------------------------------------------------------------------------------------------
def evaluate_retrieval(
    query_feats: torch.Tensor,
    gallery_feats: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    topk: Sequence[int] = (1, 5, 10, 20, 50),
    backend: str = "faiss",
    knn_ks: Sequence[int] = (),
    knn_temperature: float = 0.07,
) -> Dict[str, object]:
    """Top-k accuracy and mAP of test -> train retrieval on final (normalised) features, and
    weighted kNN classification top-1 (:mod:`ascnet.evaluation.knn`) from the same search.

    Args:
        query_feats: (Q, D) L2-normalised query features.
        gallery_feats: (G, D) L2-normalised gallery features.
        query_labels: (Q,) int64.
        gallery_labels: (G,) int64.
        topk: the k of the top-k accuracies.
        backend: search backend of :func:`ascnet.utils.search.knn`.
        knn_ks: k values of the weighted kNN classifier (empty: none).
        knn_temperature: its temperature.

    Returns:
        ``{"top1": %, ..., "mAP": %, "knn<k>_top1": %, ..., "neighbors": (Q, max k) int64
        gallery indices, "similarities": (Q, max k) float64}``.
    """
    from .knn import knn_top1

    kmax = max(int(k) for k in topk)
    sims, nbrs = knn(query_feats, gallery_feats, max([kmax] + [int(k) for k in knn_ks]), backend=backend)
    sims, nbrs = sims.cpu(), nbrs.cpu()
    gl = gallery_labels.cpu()
    res: Dict[str, object] = dict(retrieval_topk_from_neighbors(gl[nbrs[:, :kmax]], query_labels.cpu(), topk))
    res["mAP"] = retrieval_map(query_feats.cpu(), gallery_feats.cpu(), query_labels.cpu(), gl)
    if knn_ks:
        num_classes = int(max(int(gl.max()), int(query_labels.max())) + 1)
        res.update(knn_top1(sims, gl[nbrs], query_labels, num_classes, knn_ks, knn_temperature))
    res["neighbors"] = nbrs[:, :kmax]
    res["similarities"] = sims[:, :kmax]
    return res


# ------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------
def pool_clip_features(clip_feats: torch.Tensor) -> torch.Tensor:
    """Video features: mean of the L2-normalised clip features.

    Args:
        clip_feats: (N, V, D) raw backbone features of V views per video.

    Returns:
        (N, D) pooled (not yet re-normalised) video features.
    """
    return F.normalize(clip_feats.float(), dim=-1).mean(dim=1)


def finalize_features(
    query: torch.Tensor, gallery: torch.Tensor, center: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Optional centring (subtract the gallery mean from both), then L2 normalisation.

    Args:
        query: (Q, D) pooled video features.
        gallery: (G, D) pooled video features.
        center: subtract the gallery mean first.

    Returns:
        (Q, D), (G, D) unit-norm features.
    """
    if center:
        mu = gallery.mean(dim=0, keepdim=True)
        query, gallery = query - mu, gallery - mu
    return F.normalize(query, dim=-1), F.normalize(gallery, dim=-1)


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's content (any iopath URI)."""
    h = hashlib.sha256()
    with g_pathmgr.open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def feature_protocol(cfg: CfgNode, weights_id: str) -> Dict[str, object]:
    """Every setting that defines the retrieval features (the cache key) and the result."""
    if cfg.RETRIEVAL.POOLING not in POOLINGS:
        raise ValueError(f"RETRIEVAL.POOLING is {cfg.RETRIEVAL.POOLING!r}; choose one of {list(POOLINGS)}.")
    b = cfg.MODEL.BACKBONE
    return {
        "weights": weights_id,
        "dataset": cfg.TEST.DATASET,
        "data_dir": cfg.DATA.PATH_TO_DATA_DIR,
        "split_id": cfg.DATA.SPLIT_ID,
        "query_split": cfg.RETRIEVAL.QUERY_SPLIT,
        "gallery_split": cfg.RETRIEVAL.GALLERY_SPLIT,
        "num_clips": cfg.RETRIEVAL.NUM_CLIPS,
        "num_crops": cfg.RETRIEVAL.NUM_CROPS,
        "pooling": cfg.RETRIEVAL.POOLING,
        "num_frames": cfg.DATA.NUM_FRAMES,
        "sampling_rate": cfg.DATA.SAMPLING_RATE,
        "target_fps": cfg.DATA.TARGET_FPS,
        "crop_size": cfg.DATA.TEST_CROP_SIZE,
        "short_side": cfg.DATA.TEST_SHORT_SIDE,
        "mean": list(cfg.DATA.MEAN),
        "std": list(cfg.DATA.STD),
        "backbone": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in b.items()},
        "seed_if_random": cfg.RNG_SEED if weights_id.startswith("random") else None,
    }


def _view_cfg(cfg: CfgNode, num_clips: int, num_crops: int) -> CfgNode:
    c = cfg.clone()
    c.defrost()
    c.TEST.NUM_ENSEMBLE_VIEWS = int(num_clips)
    c.TEST.NUM_SPATIAL_CROPS = int(num_crops)
    c.freeze()
    return c


def build_retrieval_dataset(cfg: CfgNode, split: str, num_clips: int, num_crops: int):
    """A test-mode dataset (deterministic views) of ``split`` with the given view counts."""
    from ascnet.data import build_dataset

    return build_dataset(_view_cfg(cfg, num_clips, num_crops), split, "test")


def extract_video_features(
    backbone: torch.nn.Module, dataset, batch_size: int, num_workers: int = 0, device=None, transform=None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pooled video features (mean of L2-normalised view features) of every video once.

    Args:
        backbone: (N, C, T, H, W) -> (N, D), in eval mode.
        dataset: test-mode dataset, ``"clips"`` (V, C, T, H, W) per video.
        batch_size: global videos per step.
        transform: optional ``(clips (N, V, C, T, H, W), index (N,)) -> clips`` applied to the
            normalised views first (the time perturbations of :mod:`ascnet.evaluation.diagnostics`).

    Returns:
        (len(dataset), D) float32 features and (len(dataset),) int64 labels, in index order.
    """
    device = device or torch.device("cpu")

    def fn(batch):
        clips = batch["clips"]  # (N, V, C, T, H, W)
        if transform is not None:
            clips = transform(clips, torch.as_tensor(batch["index"]))
        n, v = clips.shape[:2]
        feats = backbone(clips.flatten(0, 1)).view(n, v, -1)
        return {"feats": pool_clip_features(feats)}

    out = inference_on_dataset(fn, dataset, batch_size, num_workers=num_workers, device=device)
    return out["feats"], out["label"]


def build_retrieval_backbone(cfg: CfgNode) -> Tuple[torch.nn.Module, str, Dict[str, object]]:
    """The backbone with the checkpoint's weights (or seeded random weights).

    ``RETRIEVAL.CHECKPOINT_FILE_PATH`` may be a checkpoint file or a run's OUTPUT_DIR (its
    newest checkpoint is used); the sha256 is that of the file actually read.

    Returns:
        (backbone + IdentityHead in eval mode: (N, C, T, H, W) -> (N, D), weights id
        ``"sha256:<hex>"`` or ``"random-init"``, load report).
    """
    from ascnet.modeling import build_backbone

    path = cfg.RETRIEVAL.CHECKPOINT_FILE_PATH
    torch.manual_seed(cfg.RNG_SEED)  # random init is reproducible too
    backbone = build_backbone(cfg)
    report: Dict[str, object] = {}
    if path:
        from ascnet.modeling.weights import load_backbone_weights

        from .paths import resolve_checkpoint_path

        path = resolve_checkpoint_path(path, "RETRIEVAL.CHECKPOINT_FILE_PATH (--checkpoint)")

        report = _as_report(load_backbone_weights(backbone, path))
        report["file"] = path
        weights_id = "sha256:" + file_sha256(path)
    else:
        weights_id = "random-init"
    from ascnet.modeling.heads import build_head

    # Table 1: retrieval uses the raw backbone output (identity head, D -> D).
    model = torch.nn.Sequential(backbone, build_head("IdentityHead", backbone.out_dim, backbone.out_dim))
    return model.eval(), weights_id, report


def _as_report(r) -> Dict[str, object]:
    if r is None:
        return {}
    if isinstance(r, dict):
        return {k: (list(v) if isinstance(v, (list, tuple, set)) else v) for k, v in r.items()}
    out = {}
    if hasattr(r, "loaded"):
        out["num_loaded"] = len(r.loaded)
    for k in ("missing_keys", "unexpected_keys", "missing", "unexpected"):
        if hasattr(r, k):
            out[k] = list(getattr(r, k))
    return out


def cached_features(cfg, backbone, protocol, split, device) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """The pooled video features of ``split``: from ``RETRIEVAL.CACHE_DIR`` when the protocol
    matches, else extracted (and cached by rank 0), through
    :func:`ascnet.evaluation.feature_cache.load_or_extract_features`.

    Returns:
        (N, D) float32 features, (N,) int64 labels, True when read from the cache.
    """
    def extract():
        ds = build_retrieval_dataset(cfg, split, cfg.RETRIEVAL.NUM_CLIPS, cfg.RETRIEVAL.NUM_CROPS)
        return extract_video_features(
            backbone, ds, cfg.RETRIEVAL.BATCH_SIZE, num_workers=cfg.DATA_LOADER.NUM_WORKERS, device=device
        )

    cache_dir = cfg.RETRIEVAL.CACHE_DIR or os.path.join(cfg.OUTPUT_DIR, "retrieval_cache")
    return load_or_extract_features(cache_dir, protocol, split, cfg.RETRIEVAL.USE_CACHE, "RETRIEVAL.CACHE_DIR", extract)


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------
def protocol_line(protocol: Dict[str, object]) -> str:
    """One line stating the protocol of a result (split, views, pooling, centring, backend, weights)."""
    w = str(protocol["weights"])
    w = w if w == "random-init" else w[: len("sha256:") + 12]
    return (
        f"{protocol['dataset']} split{protocol['split_id']} {protocol['query_split']}->{protocol['gallery_split']} | "
        f"clips={protocol['num_clips']} crops={protocol['num_crops']} pool={protocol['pooling']} "
        f"center={protocol['center']} backend={protocol['backend']} | weights={w}"
    )


def format_table(
    results: Dict[str, float], protocol: Dict[str, object], topk: Sequence[int], chance: Optional[Dict[str, float]] = None
) -> str:
    """A text table: one row per metric (retrieval top-k, mAP, kNN top-1), each row stating its
    chance level (``chance[name]``, "-" when unknown) and the protocol."""
    proto = protocol_line(protocol)
    names = [f"top{k}" for k in topk] + ["mAP"] + sorted(
        (k for k in results if k.startswith("knn") and k.endswith("_top1")), key=lambda k: int(k[3:-5])
    )
    chance = chance or {}
    width = max(len(n) for n in names)
    lines = [f"{'metric':<{width}}  {'value':>7}  {'chance':>7}  protocol"]
    for n in names:
        c = f"{chance[n]:7.2f}" if n in chance else f"{'-':>7}"
        lines.append(f"{n:<{width}}  {results[n]:7.2f}  {c}  {proto}")
    return "\n".join(lines)


def result_chance(query_labels: torch.Tensor, gallery_labels: torch.Tensor, topk: Sequence[int], knn_ks: Sequence[int]) -> Dict[str, float]:
    """Chance level of every reported metric: random ranking for retrieval top-k and mAP, a
    uniform guess over the classes for kNN top-1 (``ascnet.evaluation.knn``)."""
    from .knn import classification_chance_top1, retrieval_chance

    out = retrieval_chance(query_labels, gallery_labels, topk)
    num_classes = int(max(int(gallery_labels.max()), int(query_labels.max())) + 1)
    out.update({f"knn{int(k)}_top1": classification_chance_top1(num_classes) for k in knn_ks})
    return out
