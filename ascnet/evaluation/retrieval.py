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

Features are cached under ``RETRIEVAL.CACHE_DIR`` by the sha256 of the checkpoint FILE CONTENT
and every key that defines the features, so a changed checkpoint never reuses stale features.
"""
import hashlib
import html
import json
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr

from .inference import inference_on_dataset
from .metrics import retrieval_map, retrieval_topk_from_neighbors

logger = logging.getLogger(__name__)

# faiss' GPU brute-force search returns at most this many neighbours per query.
_FAISS_GPU_MAX_K = 2048


# ------------------------------------------------------------------------------------------------
# Search
# ------------------------------------------------------------------------------------------------
def _rescore(queries: torch.Tensor, gallery: torch.Tensor, idx: torch.Tensor, chunk_size: int = 256) -> torch.Tensor:
    """Exact float64 inner products of each query with its candidate gallery rows.

    Backends compute float32 scores with different kernels (BLAS blocking, GPU reductions), so
    two near-equal scores may swap from one backend to the other. Rescoring the candidates the
    same way for every backend makes the final order backend-independent.

    Args:
        queries: (Q, D); gallery: (G, D); idx: (Q, K) candidate gallery rows.

    Returns:
        (Q, K) float64 scores.
    """
    out = torch.empty(idx.shape, dtype=torch.float64, device=idx.device)
    g64 = gallery.double()
    for s in range(0, idx.shape[0], chunk_size):
        q = queries[s : s + chunk_size].double().unsqueeze(2)  # (q, D, 1)
        cand = g64[idx[s : s + chunk_size]]  # (q, K, D)
        out[s : s + chunk_size] = torch.bmm(cand, q).squeeze(2)
    return out


def _sort_candidates(scores: torch.Tensor, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Order each row's candidates by decreasing score, ties by increasing gallery index."""
    o = torch.argsort(idx, dim=1)  # indices are unique within a row
    scores, idx = scores.gather(1, o), idx.gather(1, o)
    o = torch.sort(-scores, dim=1, stable=True).indices
    return scores.gather(1, o), idx.gather(1, o)


def _torch_search_fn(gallery: torch.Tensor, chunk_size: int = 1024) -> Callable:
    def fn(q: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        s_out, i_out = [], []
        for s in range(0, q.shape[0], chunk_size):
            sims = q[s : s + chunk_size] @ gallery.T
            v, i = sims.topk(k, dim=1)
            s_out.append(v)
            i_out.append(i)
        return torch.cat(s_out), torch.cat(i_out)

    return fn


def _faiss_search_fn(gallery: torch.Tensor) -> Callable:
    from ascnet.utils.faiss_utils import knn_search

    def fn(q: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if q.is_cuda and k > _FAISS_GPU_MAX_K:  # beyond the GPU limit: exact CPU search
            s, i = knn_search(q.cpu(), gallery.cpu(), k, use_gpu=False)
            return s.to(q.device), i.to(q.device)
        return knn_search(q, gallery, k, use_gpu="auto")

    return fn


def knn(queries: torch.Tensor, gallery: torch.Tensor, k: int, backend: str = "faiss") -> Tuple[torch.Tensor, torch.Tensor]:
    """Deterministic exact inner-product k-nearest-neighbour search.

    The backend proposes ``k + margin`` candidates per query; their scores are recomputed in
    float64 (:func:`_rescore`) and they are ordered by decreasing score, equal scores by
    increasing gallery index, including at the k-th position: when the k-th score is tied with
    the last candidate, the search is widened until the whole tie group is seen. So the result
    depends neither on the backend's float32 rounding nor on its internal tie order.

    Args:
        queries: (Q, D) float32.
        gallery: (G, D) float32, on the same device.
        k: neighbours per query (clipped to G).
        backend: "faiss" (GPU index when faiss has GPU support and the tensors are on a GPU)
            or "torch" (chunked matmul + topk).

    Returns:
        (scores, indices): (Q, min(k, G)) float64 and int64, nearest first.
    """
    if backend not in ("faiss", "torch"):
        raise ValueError(f"Unknown retrieval backend {backend!r}; use 'faiss' or 'torch' (RETRIEVAL.BACKEND).")
    queries, gallery = queries.float().contiguous(), gallery.float().contiguous()
    n_gallery = gallery.shape[0]
    if n_gallery == 0:
        raise ValueError("The gallery is empty: RETRIEVAL.GALLERY_SPLIT has no videos.")
    k = min(int(k), n_gallery)
    fn = _faiss_search_fn(gallery) if backend == "faiss" else _torch_search_fn(gallery)
    out_s = torch.empty(queries.shape[0], k, dtype=torch.float64, device=queries.device)
    out_i = torch.empty(queries.shape[0], k, dtype=torch.int64, device=queries.device)
    rows = torch.arange(queries.shape[0], device=queries.device)
    ks = min(n_gallery, k + max(8, k // 4))
    while rows.numel():
        _, i = fn(queries[rows], ks)
        i = i.long()
        s, i = _sort_candidates(_rescore(queries[rows], gallery, i), i)
        if ks < n_gallery:
            # The k-th score is tied with the last candidate: the tie group may go further.
            open_rows = s[:, ks - 1] == s[:, k - 1]
        else:
            open_rows = torch.zeros(rows.numel(), dtype=torch.bool, device=rows.device)
        done = ~open_rows
        out_s[rows[done]] = s[done, :k]
        out_i[rows[done]] = i[done, :k]
        rows = rows[open_rows]
        ks = min(n_gallery, ks * 2)
    return out_s, out_i


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
        backend: search backend of :func:`knn`.
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


def _cache_key(protocol: Dict[str, object], split: str) -> str:
    blob = json.dumps({"protocol": protocol, "split": split}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


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
    backbone: torch.nn.Module, dataset, batch_size: int, num_workers: int = 0, device=None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pooled video features (mean of L2-normalised view features) of every video once.

    Args:
        backbone: (N, C, T, H, W) -> (N, D), in eval mode.
        dataset: test-mode dataset, ``"clips"`` (V, C, T, H, W) per video.
        batch_size: global videos per step.

    Returns:
        (len(dataset), D) float32 features and (len(dataset),) int64 labels, in index order.
    """
    device = device or torch.device("cpu")

    def fn(batch):
        clips = batch["clips"]  # (N, V, C, T, H, W)
        n, v = clips.shape[:2]
        feats = backbone(clips.flatten(0, 1)).view(n, v, -1)
        return {"feats": pool_clip_features(feats)}

    out = inference_on_dataset(fn, dataset, batch_size, num_workers=num_workers, device=device)
    return out["feats"], out["label"]


def _is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


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


def _cached_features(cfg, backbone, protocol, split, device) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    cache_dir = cfg.RETRIEVAL.CACHE_DIR or os.path.join(cfg.OUTPUT_DIR, "retrieval_cache")
    path = os.path.join(cache_dir, f"{split}_{_cache_key(protocol, split)}.pt")
    if cfg.RETRIEVAL.USE_CACHE and g_pathmgr.exists(path):
        with g_pathmgr.open(path, "rb") as f:
            blob = torch.load(f, map_location="cpu", weights_only=True)
        if blob.get("protocol") == json.dumps(protocol, sort_keys=True):
            return blob["feats"], blob["labels"], True
    ds = build_retrieval_dataset(cfg, split, cfg.RETRIEVAL.NUM_CLIPS, cfg.RETRIEVAL.NUM_CROPS)
    feats, labels = extract_video_features(
        backbone, ds, cfg.RETRIEVAL.BATCH_SIZE, num_workers=cfg.DATA_LOADER.NUM_WORKERS, device=device
    )
    if cfg.RETRIEVAL.USE_CACHE and _is_main():
        import io

        from ascnet.utils.io import atomic_write_bytes

        buf = io.BytesIO()
        torch.save({"protocol": json.dumps(protocol, sort_keys=True), "feats": feats, "labels": labels}, buf)
        atomic_write_bytes(path, buf.getvalue())
    return feats, labels, False


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


def _to_uint8_frames(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Every frame of the middle view of a (V, C, T, H, W) normalised clip tensor as
    (T, H, W, 3) uint8 images."""
    v = clips[clips.shape[0] // 2]  # (C, T, H, W)
    m = torch.tensor(mean, dtype=v.dtype).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=v.dtype).view(-1, 1, 1, 1)
    img = ((v * s + m).clamp(0, 1) * 255).round().byte().permute(1, 2, 3, 0).numpy()
    if img.shape[3] == 1:
        img = np.repeat(img, 3, axis=3)
    return img[..., :3]


def _strip(frames: np.ndarray, n: int = 4) -> np.ndarray:
    """``n`` evenly spaced frames of (T, H, W, 3) side by side: (H, n * W, 3)."""
    idx = np.linspace(0, frames.shape[0] - 1, min(n, frames.shape[0])).round().astype(int)
    return np.concatenate([frames[i] for i in idx], axis=1)


def _class_names(ds) -> Optional[List[str]]:
    names = getattr(ds, "class_names", None) or getattr(ds, "classes", None)
    return list(names) if names else None


def _label_text(ds, label: int) -> str:
    names = _class_names(ds)
    if names and 0 <= label < len(names):
        return f"{label}:{names[label]}"
    return str(label)


def write_visualization(
    cfg: CfgNode,
    out_dir: str,
    neighbors: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    title: str,
    num_queries: int = 8,
    top: int = 5,
    similarities: Optional[torch.Tensor] = None,
) -> str:
    """Write ``index.html``, ``contact_sheet.png`` and one animated GIF per shown video.

    Each row shows a query and its ``top`` nearest gallery videos: an animated GIF of the
    video's middle clip (its motion), the class, the cosine similarity to the query and the
    video's path, framed green (same class) or red. ``num_queries`` queries are sampled with
    ``cfg.RNG_SEED`` (0 = every query); the page states how many are shown. The contact sheet
    shows each video as a strip of four frames of its clip.

    Returns:
        The path of the HTML page.
    """
    from PIL import Image, ImageDraw

    q_ds = build_retrieval_dataset(cfg, cfg.RETRIEVAL.QUERY_SPLIT, 1, 1)
    g_ds = build_retrieval_dataset(cfg, cfg.RETRIEVAL.GALLERY_SPLIT, 1, 1)
    rng = np.random.default_rng(cfg.RNG_SEED)
    n_q = neighbors.shape[0]
    shown = n_q if num_queries <= 0 else min(num_queries, n_q)
    chosen = sorted(rng.choice(n_q, size=shown, replace=False).tolist())
    g_pathmgr.mkdirs(out_dir)
    top = min(top, neighbors.shape[1])
    fps = max(int(cfg.DATA.TARGET_FPS) or 10, 1)

    def save_gif(frames: np.ndarray, name: str) -> None:
        imgs = [Image.fromarray(f) for f in frames]
        with g_pathmgr.open(os.path.join(out_dir, name), "wb") as f:
            imgs[0].save(f, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)

    thumb = 96
    strip_w = 4 * 48
    pad, text_h = 6, 14
    sheet = Image.new("RGB", ((top + 1) * (strip_w + pad) + pad, len(chosen) * (48 + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    rows_html = []

    def cell(frames: np.ndarray, x: int, y: int, colour: str, text: str) -> None:
        st = Image.fromarray(_strip(frames)).resize((strip_w, 48))
        sheet.paste(st, (x, y))
        draw.rectangle([x - 2, y - 2, x + strip_w + 1, y + 48 + 1], outline=colour, width=2)
        draw.text((x, y + 48 + 1), text[:30], fill="black")

    for r, qi in enumerate(chosen):
        q_lab = int(query_labels[qi])
        q_frames = _to_uint8_frames(q_ds[qi]["clips"], cfg.DATA.MEAN, cfg.DATA.STD)
        q_name = f"query{qi:05d}.gif"
        save_gif(q_frames, q_name)
        cells = [
            f'<td class="q"><img src="{q_name}" width="{thumb}"><br>query {qi}<br>'
            f"{html.escape(_label_text(q_ds, q_lab))}<br><small>{html.escape(q_ds.paths[qi])}</small></td>"
        ]
        y = pad + r * (48 + text_h + pad)
        cell(q_frames, pad, y, "blue", f"Q {_label_text(q_ds, q_lab)}")
        for j in range(top):
            gi = int(neighbors[qi, j])
            g_lab = int(gallery_labels[gi])
            ok = g_lab == q_lab
            g_frames = _to_uint8_frames(g_ds[gi]["clips"], cfg.DATA.MEAN, cfg.DATA.STD)
            g_name = f"query{qi:05d}_nn{j + 1}_gallery{gi:05d}.gif"
            save_gif(g_frames, g_name)
            mark = "right" if ok else "wrong"
            sim = f"sim {float(similarities[qi, j]):.3f}" if similarities is not None else ""
            cells.append(
                f'<td class="{mark}"><img src="{g_name}" width="{thumb}"><br>#{j + 1} gallery {gi} {sim}<br>'
                f"{html.escape(_label_text(g_ds, g_lab))} ({mark})<br><small>{html.escape(g_ds.paths[gi])}</small></td>"
            )
            x = pad + (j + 1) * (strip_w + pad)
            cell(g_frames, x, y, "green" if ok else "red", ("+" if ok else "x") + f" {_label_text(g_ds, g_lab)} {sim}")
        rows_html.append("<tr>" + "".join(cells) + "</tr>")
    with g_pathmgr.open(os.path.join(out_dir, "contact_sheet.png"), "wb") as f:
        sheet.save(f, format="PNG")
    sample = "every query" if shown == n_q else f"{shown} of the {n_q} queries, sampled with RNG_SEED={cfg.RNG_SEED}"
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>ascnet retrieval</title>"
        "<style>td{text-align:center;font:12px sans-serif;padding:4px;vertical-align:top}"
        "td.right img{border:4px solid #2a2}td.wrong img{border:4px solid #d22}td.q img{border:4px solid #22d}</style>"
        f"</head><body><h2>Video retrieval: query and top-{top} neighbours</h2><p>{html.escape(title)}</p>"
        f"<p>Shown: {html.escape(sample)} (RETRIEVAL.VIS_NUM_QUERIES, 0 = all). Each video plays its middle clip "
        "(the frames the encoder sees); sim = cosine similarity of the video features to the query's.</p>"
        "<p>Green: same class as the query (right); red: other class (wrong).</p>"
        "<table>" + "\n".join(rows_html) + "</table>"
        '<h3>Contact sheet (4 frames of each clip)</h3><img src="contact_sheet.png"></body></html>\n'
    )
    page_path = os.path.join(out_dir, "index.html")
    with g_pathmgr.open(page_path, "w") as f:
        f.write(page)
    return page_path


# ------------------------------------------------------------------------------------------------
# Task
# ------------------------------------------------------------------------------------------------
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
        logger.warning(msg)
        if _is_main():
            print("!" * 80 + "\n" + msg + "\n" + "!" * 80, flush=True)
    protocol = feature_protocol(cfg, weights_id)
    with torch.no_grad():
        qf, ql, q_hit = _cached_features(cfg, backbone, protocol, cfg.RETRIEVAL.QUERY_SPLIT, device)
        gf, gl, g_hit = _cached_features(cfg, backbone, protocol, cfg.RETRIEVAL.GALLERY_SPLIT, device)
    if not _is_main():
        _barrier()
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
    print(table, flush=True)
    logger.info("retrieval results:\n%s", table)
    tag = "random-init" if weights_id == "random-init" else weights_id.split(":")[1][:12]
    json_path = os.path.join(cfg.OUTPUT_DIR, f"retrieval_split{cfg.DATA.SPLIT_ID}_{tag}.json")
    out = {"results": res, "chance": chance, "protocol": full_protocol, "load_report": report}
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
    _barrier()
    return out


def result_chance(query_labels: torch.Tensor, gallery_labels: torch.Tensor, topk: Sequence[int], knn_ks: Sequence[int]) -> Dict[str, float]:
    """Chance level of every reported metric: random ranking for retrieval top-k and mAP, a
    uniform guess over the classes for kNN top-1 (``ascnet.evaluation.knn``)."""
    from .knn import classification_chance_top1, retrieval_chance

    out = retrieval_chance(query_labels, gallery_labels, topk)
    num_classes = int(max(int(gallery_labels.max()), int(query_labels.max())) + 1)
    out.update({f"knn{int(k)}_top1": classification_chance_top1(num_classes) for k in knn_ks})
    return out


def _faiss_gpu() -> bool:
    try:
        from ascnet.utils.faiss_utils import faiss_has_gpu

        return faiss_has_gpu()
    except ImportError:
        return False
