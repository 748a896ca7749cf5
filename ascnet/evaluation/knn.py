"""Weighted k-nearest-neighbour classification from a neighbour search (InstDisc protocol).

Independent of how the search is done: the functions take the similarities of each query's
nearest gallery items (nearest first) and the labels of those items, so any search (faiss,
torch, a memory bank) can feed them.

Votes (Wu et al., "Unsupervised feature learning via non-parametric instance discrimination",
CVPR 2018; the kNN monitor of SlowFast/MoCo): among the k nearest gallery items of a query,
class c receives ``sum_i exp(s_i / T)`` over the neighbours i of class c, with ``s_i`` the
cosine similarity and ``T`` the temperature (0.07); the prediction is the class with the most
weight, ties broken by the smallest class index. k larger than the number of neighbours given
is clipped to it.
"""
from typing import Dict, Sequence

import torch

DEFAULT_KS = (20, 200)
DEFAULT_TEMPERATURE = 0.07


def knn_predict(
    similarities: torch.Tensor, neighbor_labels: torch.Tensor, num_classes: int, k: int,
    temperature: float = DEFAULT_TEMPERATURE,
) -> torch.Tensor:
    """Class scores of temperature-weighted k-NN votes.

    Args:
        similarities: (Q, K') cosine similarities of each query's nearest gallery items,
            nearest first.
        neighbor_labels: (Q, K') int64 labels of those items.
        num_classes: C.
        k: neighbours that vote (clipped to K').
        temperature: T of the weights ``exp(s / T)``.

    Returns:
        (Q, C) float64 vote weights per class (normalised to sum to 1 per query).
    """
    if similarities.shape != neighbor_labels.shape or similarities.ndim != 2:
        raise ValueError(
            f"similarities {tuple(similarities.shape)} and neighbor_labels {tuple(neighbor_labels.shape)} must "
            "both be (num_queries, num_neighbours)."
        )
    if temperature <= 0:
        raise ValueError(f"The kNN temperature must be > 0, got {temperature}.")
    k = max(1, min(int(k), similarities.shape[1]))
    s = similarities[:, :k].double()
    # Subtracting the row maximum leaves the normalised weights unchanged and avoids overflow.
    w = torch.exp((s - s.max(dim=1, keepdim=True).values) / float(temperature))
    votes = torch.zeros(s.shape[0], int(num_classes), dtype=torch.float64, device=s.device)
    votes.scatter_add_(1, neighbor_labels[:, :k].long().to(s.device), w)
    return votes / votes.sum(dim=1, keepdim=True)


def knn_top1(
    similarities: torch.Tensor, neighbor_labels: torch.Tensor, query_labels: torch.Tensor, num_classes: int,
    ks: Sequence[int] = DEFAULT_KS, temperature: float = DEFAULT_TEMPERATURE,
) -> Dict[str, float]:
    """Top-1 accuracy (%) of weighted k-NN classification for each k.

    Args:
        similarities, neighbor_labels: (Q, K') as in :func:`knn_predict`.
        query_labels: (Q,) int64 true labels.
        num_classes: C.
        ks: the k values (each clipped to K').
        temperature: T.

    Returns:
        ``{"knn<k>_top1": %}`` for each k in ``ks`` (the key keeps the asked k).
    """
    out = {}
    q = query_labels.long().cpu()
    for k in ks:
        votes = knn_predict(similarities, neighbor_labels, num_classes, k, temperature).cpu()
        # argmax returns the first maximum: ties go to the smallest class index.
        pred = votes.argmax(dim=1)
        out[f"knn{int(k)}_top1"] = float((pred == q).double().mean() * 100.0) if q.numel() else 0.0
    return out


def retrieval_chance(query_labels: torch.Tensor, gallery_labels: torch.Tensor, topk: Sequence[int] = (1,)) -> Dict[str, float]:
    """Chance levels (%) of retrieval under a uniformly random ranking of the gallery.

    ``top<k>``: the mean over queries of ``1 - C(G - n, k) / C(G, k)`` (n = gallery videos of the
    query's class: the probability that k random gallery videos hold at least one of them);
    ``mAP``: the mean class share n / G (the expected average precision of a random ranking,
    up to O(1/n)).
    """
    g = gallery_labels.long().cpu()
    q = query_labels.long().cpu()
    size = int(max(int(g.max()) if g.numel() else 0, int(q.max()) if q.numel() else 0)) + 1
    n = torch.bincount(g, minlength=size)[q].double()  # (Q,)
    total = g.numel()
    out = {}
    for asked in topk:
        k = min(int(asked), total)
        # C(G - n, k) / C(G, k) = prod_{i < k} (G - n - i) / (G - i)
        i = torch.arange(k, dtype=torch.float64)
        miss = ((total - n[:, None] - i).clamp(min=0) / (total - i)).prod(dim=1)
        out[f"top{int(asked)}"] = float((1 - miss).mean() * 100.0) if q.numel() else 0.0
    out["mAP"] = float((n / max(total, 1)).mean() * 100.0) if q.numel() else 0.0
    return out


def classification_chance_top1(num_classes: int) -> float:
    """Top-1 (%) of a uniform random guess: 100 / C."""
    return 100.0 / max(int(num_classes), 1)
