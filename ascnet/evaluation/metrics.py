"""Evaluation metrics: classification top-k and retrieval top-k accuracy / mAP.

Every ranking in this module is deterministic: items are ordered by decreasing score and ties
are broken by increasing index (the class index for classification, the gallery index for
retrieval). torch's stable sort gives that order directly, so the numbers never depend on the
backend, the batch layout or the number of processes.
"""
from typing import Dict, Iterable, Sequence

import torch


def stable_rank(scores: torch.Tensor) -> torch.Tensor:
    """Order items by decreasing score, ties by increasing index.

    Args:
        scores: (N, M) float scores.

    Returns:
        (N, M) int64: ``order[i, r]`` is the item at rank ``r`` (0-based) for row ``i``.
    """
    # A stable ascending sort of the negated scores keeps equal scores in index order.
    return torch.sort(-scores, dim=1, stable=True).indices


def classification_topk(probs: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Top-k accuracy (%) of per-video class scores.

    A video is correct at k if its label is among the k highest-scoring classes (ties broken
    by class index). k larger than the number of classes is clipped to it.

    Args:
        probs: (N, K) per-video class scores (e.g. view-averaged softmax).
        labels: (N,) int64 labels in [0, K).
        ks: the k values.

    Returns:
        ``{"top1": ..., "top5": ...}`` in percent, plus ``"num_videos"``.
    """
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"Expected probs (N, K) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}.")
    n, num_classes = probs.shape
    out: Dict[str, float] = {}
    if n == 0:
        raise ValueError("No videos to score: the evaluation split is empty.")
    order = stable_rank(probs.float())
    hit_rank = (order == labels.view(-1, 1)).float().argmax(dim=1)  # rank of the true class
    for k in ks:
        kk = min(int(k), num_classes)
        out[f"top{k}"] = float((hit_rank < kk).double().mean().item() * 100.0)
    out["num_videos"] = int(n)
    return out


def retrieval_topk_from_neighbors(
    neighbor_labels: torch.Tensor, query_labels: torch.Tensor, ks: Iterable[int]
) -> Dict[str, float]:
    """Retrieval top-k accuracy (%) from the ranked labels of each query's nearest neighbours.

    A query counts as correct at k if ANY of its k nearest gallery videos has its class.

    Args:
        neighbor_labels: (Q, K_max) labels of the ranked neighbours (nearest first), with
            K_max >= max(ks) or K_max = gallery size (larger k are clipped to it).
        query_labels: (Q,) labels of the queries.
        ks: the k values.

    Returns:
        ``{"top1": ..., "top5": ...}`` in percent.
    """
    match = neighbor_labels == query_labels.view(-1, 1)  # (Q, K_max)
    out = {}
    for k in ks:
        kk = min(int(k), match.shape[1])
        out[f"top{k}"] = float(match[:, :kk].any(dim=1).double().mean().item() * 100.0)
    return out


def average_precision_from_ranking(ranked_relevance: torch.Tensor) -> torch.Tensor:
    """Average precision of each row of a fully ranked relevance matrix.

    ``AP = (1 / R) * sum_{r : rel_r} precision@r`` over the full ranked list, where R is the
    number of relevant items of the row and precision@r = (relevant items in ranks 1..r) / r.
    Rows with R = 0 get AP = 0 (such a query can never be answered correctly).

    Args:
        ranked_relevance: (Q, M) bool, relevance of the item at each rank (rank 1 first).

    Returns:
        (Q,) float64 average precisions.
    """
    rel = ranked_relevance.to(torch.float64)
    hits = rel.cumsum(dim=1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64, device=rel.device)
    prec_sum = (hits / ranks * rel).sum(dim=1)
    num_rel = rel.sum(dim=1)
    return torch.where(num_rel > 0, prec_sum / num_rel.clamp(min=1), torch.zeros_like(prec_sum))


def retrieval_map(
    query_feats: torch.Tensor,
    gallery_feats: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    chunk_size: int = 256,
) -> float:
    """Mean average precision (%) of retrieval over the FULL ranked gallery.

    For each query the whole gallery is ranked by decreasing dot-product similarity (cosine for
    L2-normalised features, computed in float64), ties broken by increasing gallery index; a gallery video is
    relevant when it has the query's class. AP is computed as in
    :func:`average_precision_from_ranking` (queries with no relevant gallery video count as
    AP = 0), and mAP is the mean of AP over all queries.

    Args:
        query_feats: (Q, D) float features.
        gallery_feats: (G, D) float features.
        query_labels: (Q,) int64.
        gallery_labels: (G,) int64.
        chunk_size: queries scored at once (bounds memory at chunk_size x G).

    Returns:
        mAP in percent.
    """
    aps = []
    g = gallery_feats.double()  # float64 scores: the same ranking as the retrieval search
    for s in range(0, query_feats.shape[0], chunk_size):
        sims = query_feats[s : s + chunk_size].double() @ g.T  # (q, G)
        order = stable_rank(sims)
        rel = gallery_labels[order] == query_labels[s : s + chunk_size].view(-1, 1)
        aps.append(average_precision_from_ranking(rel))
    if not aps:
        raise ValueError("No queries: the query split is empty.")
    return float(torch.cat(aps).mean().item() * 100.0)
