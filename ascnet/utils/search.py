"""Exact nearest-neighbour search by inner product: the one implementation in ascnet.

Used by the memory bank (SCP positives: :func:`masked_top1`), the positive samplers and the
retrieval evaluation (:func:`knn`). Two backends give the same answer:

- ``torch``: chunked matmul + top-k / max, on the tensors' device;
- ``faiss``: exact brute-force ``faiss.knn`` (CPU) or ``faiss.knn_gpu`` (GPU, when the faiss
  build has GPU support and the tensors are on a GPU). faiss is imported lazily, so importing
  ascnet never needs it.

What the raw backends lack, handled here once:

- masking (a query never gets an entry of its own source video, nor an empty slot): faiss
  cannot mask per query, so :func:`masked_top1_faiss` over-fetches k hits, widens k for the
  rows whose hits are all masked, and hands the rows still without a valid hit to the exact
  torch search (:func:`masked_top1` masks whole chunks and makes no host read);
- float32 under AMP: both searches score with autocast off (bf16 scores tie near cosine 1);
- the faiss GPU k limit (:data:`FAISS_GPU_MAX_K`): a larger k runs the exact CPU search instead
  (same result, never a truncated or failed one);
- backend-independent order (:func:`knn`): candidates are rescored in float64 and ties broken
  by gallery index, widening the search when a tie group crosses the k-th position;
- a CPU-only faiss build (no ``StandardGpuResources``): :func:`faiss_has_gpu` guards every GPU
  path, and CUDA tensors are searched on the host.

Two builds of faiss may be installed (never both): ``faiss-gpu`` (Linux x86_64; imports and runs
its CPU indexes on a machine without GPU) and ``faiss-cpu``.
"""
import functools
import logging
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch

Array = Union[torch.Tensor, np.ndarray]

logger = logging.getLogger(__name__)

__all__ = [
    "BANK_SEARCH_CHOICES",
    "FAISS_GPU_MAX_K",
    "SEARCH_BACKENDS",
    "faiss_available",
    "faiss_has_gpu",
    "knn",
    "knn_search",
    "masked_top1",
    "masked_top1_faiss",
]

# faiss's GPU brute-force search returns at most this many neighbours per query.
FAISS_GPU_MAX_K = 2048


def _import_faiss():
    try:
        import faiss  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "faiss is not installed. Install `faiss-gpu` (Linux x86_64) or `faiss-cpu`, or set "
            "MEMORY_BANK.SEARCH torch / RETRIEVAL.BACKEND torch to search without it."
        ) from e
    return faiss


@functools.lru_cache(maxsize=None)
def faiss_available() -> bool:
    """True when ``import faiss`` works."""
    try:
        _import_faiss()
        return True
    except ImportError:
        return False


@functools.lru_cache(maxsize=None)
def faiss_has_gpu() -> bool:
    """True when the installed faiss build has GPU support and sees at least one GPU."""
    if not faiss_available():
        return False
    faiss = _import_faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@functools.lru_cache(maxsize=None)
def _gpu_resources():
    # One StandardGpuResources per process: creating it allocates scratch memory on the GPU.
    return _import_faiss().StandardGpuResources()


def _as_float32_numpy(x: Array) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def knn_search(
    queries: Array, gallery: Array, k: int, use_gpu: Union[bool, str] = "auto"
) -> Tuple[Array, Array]:
    """Exact top-``k`` inner-product search of ``queries`` in ``gallery`` with faiss (raw order).

    Args:
        queries: (B, d) float array (torch tensor on any device, or numpy).
        gallery: (N, d) float array of the same kind.
        k: neighbours per query. Clamped to N, so the result has ``min(k, N)`` columns and never
            holds faiss's ``-1`` "no result" entries.
        use_gpu: True = faiss GPU brute force (raises when unavailable), False = CPU,
            "auto" = GPU when :func:`faiss_has_gpu` and ``queries`` is a CUDA tensor. A ``k``
            above :data:`FAISS_GPU_MAX_K` always runs on the CPU (exact, same result).

    Returns:
        (scores, indices): (B, min(k, N)) float32 inner products, best first, and (B, min(k, N))
        int64 gallery rows. Torch tensors on ``queries``' device when ``queries`` is a tensor,
        numpy arrays otherwise.
    """
    if k < 1:
        raise ValueError(f"knn_search needs k >= 1, got {k}.")
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"knn_search needs (B, d) queries and (N, d) gallery with the same d; got "
            f"{tuple(queries.shape)} and {tuple(gallery.shape)}."
        )
    faiss = _import_faiss()
    is_torch = isinstance(queries, torch.Tensor)
    out_device = queries.device if is_torch else None
    n = gallery.shape[0]
    b = queries.shape[0]
    if n == 0 or b == 0:
        kk = 0 if n == 0 else min(k, n)
        scores, idx = np.zeros((b, kk), np.float32), np.zeros((b, kk), np.int64)
        return (torch.from_numpy(scores).to(out_device), torch.from_numpy(idx).to(out_device)) if is_torch else (scores, idx)
    k = min(k, n)
    if use_gpu == "auto":
        use_gpu = is_torch and queries.is_cuda and faiss_has_gpu()
    if use_gpu:
        if not faiss_has_gpu():
            raise RuntimeError(
                "knn_search(use_gpu=True) needs a faiss build with GPU support and a visible GPU "
                "(faiss-gpu); use use_gpu=False or 'auto'."
            )
        if k > FAISS_GPU_MAX_K:  # beyond faiss's GPU limit: the exact CPU search
            use_gpu = False
    if use_gpu:
        if is_torch and queries.is_cuda:
            # faiss.contrib.torch_utils lets knn_gpu read CUDA tensors in place (no host copy).
            import faiss.contrib.torch_utils  # noqa: F401

            xq = queries.detach().float().contiguous()
            xb = gallery.detach().to(xq.device, torch.float32).contiguous()
            scores, idx = faiss.knn_gpu(
                _gpu_resources(), xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT, device=xq.device.index or 0
            )
            return scores, idx.long()
        scores, idx = faiss.knn_gpu(
            _gpu_resources(), _as_float32_numpy(queries), _as_float32_numpy(gallery), k,
            metric=faiss.METRIC_INNER_PRODUCT,
        )
    else:
        scores, idx = faiss.knn(
            _as_float32_numpy(queries), _as_float32_numpy(gallery), k, metric=faiss.METRIC_INNER_PRODUCT
        )
    idx = idx.astype(np.int64, copy=False)
    if is_torch:
        return torch.from_numpy(scores).to(out_device), torch.from_numpy(idx).to(out_device)
    return scores, idx


# ------------------------------------------------------------------------------------------------
# Masked top-1 (SCP positives: never the query's own source, never an empty slot)
# ------------------------------------------------------------------------------------------------
# First k asked of faiss; rows whose k hits all belong to the query's own source are searched
# again with k multiplied by _FAISS_K_GROWTH, up to FAISS_GPU_MAX_K, and the rows still without
# a valid hit go to the exact torch search.
_FAISS_FIRST_K = 8
_FAISS_K_GROWTH = 8


@torch.no_grad()
def masked_top1(
    query: torch.Tensor,
    query_source: torch.Tensor,
    keys: torch.Tensor,
    key_source: torch.Tensor,
    chunk_size: int = 8192,
    scores_fn: Optional[Callable[[int, int], torch.Tensor]] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-1 of ``query @ keys.T`` over keys of another source, in chunks of key rows (torch).

    Scores are float32 with autocast off: under bf16 autocast near-duplicate keys (cosines
    about 0.004 apart near 1) would tie and the lowest index would win, not the most similar.
    Chunking bounds the temporary (B, chunk) score matrix. No host read: every chunk is masked
    as a whole (``torch.where``), so the work does not depend on tensor values.

    Args:
        query: (B, d) features.
        query_source: (B,) int64 source id of each query.
        keys: (N, d) features.
        key_source: (N,) int64 source ids; -1 marks an empty slot (never returned).
        chunk_size: key rows scored at once (memory is B x chunk_size floats).
        scores_fn: optional ``fn(start, stop) -> (B, stop - start)`` replacing the dot products
            (the random positive sampler passes random scores); defaults to ``query @ keys.T``.

    Returns:
        (indices (B,) int64, scores (B,) float32). Rows with no valid key get index -1 and score
        -inf. Ties go to the lowest index.
    """
    b = query.shape[0]
    best_score = torch.full((b,), float("-inf"), device=query.device, dtype=torch.float32)
    best_idx = torch.full((b,), -1, device=query.device, dtype=torch.long)
    n = keys.shape[0]
    chunk_size = max(1, int(chunk_size))
    with torch.autocast(query.device.type, enabled=False):
        q = query.float()
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            s = q @ keys[start:stop].float().T if scores_fn is None else scores_fn(start, stop).float()
            kv = key_source[start:stop]
            invalid = (kv[None, :] == query_source[:, None]) | (kv < 0)[None, :]
            val, arg = s.masked_fill(invalid, float("-inf")).max(dim=1)
            # Strictly greater: an earlier chunk keeps ties; -inf rows (nothing valid) never win.
            better = val > best_score
            best_score = torch.where(better, val, best_score)
            best_idx = torch.where(better, arg + start, best_idx)
    return best_idx, best_score


_warned_cpu_faiss = False


@torch.no_grad()
def masked_top1_faiss(
    query: torch.Tensor,
    query_source: torch.Tensor,
    keys: torch.Tensor,
    key_source: torch.Tensor,
    chunk_size: int = 8192,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_top1` with faiss proposing the hits (same arguments and result).

    The keys must not hold empty slots (pass the filled rows). A row whose k hits all belong to
    its own source is searched again with a larger k; past :data:`FAISS_GPU_MAX_K` it goes to the
    exact torch search, so the answer is always the masked top-1. faiss scores in float32
    whatever the autocast state. Unlike :func:`masked_top1` it reads results on the host (faiss
    runs on the host, or returns its hits there), so a sync-free training step uses the torch
    backend (``MEMORY_BANK.SEARCH auto``).
    """
    global _warned_cpu_faiss
    if not faiss_available():
        raise ImportError("MEMORY_BANK.SEARCH is 'faiss' but faiss is not installed; use 'torch' or 'auto'.")
    use_gpu = query.is_cuda and faiss_has_gpu()
    if query.is_cuda and not use_gpu and not _warned_cpu_faiss:
        logger.warning(
            "MEMORY_BANK.SEARCH is 'faiss' and the bank is on a GPU, but the installed faiss has no "
            "GPU support: every search copies the bank to the host. Use MEMORY_BANK.SEARCH auto "
            "(torch on the GPU) or install faiss-gpu."
        )
        _warned_cpu_faiss = True
    b, n = query.shape[0], keys.shape[0]
    best_idx = torch.full((b,), -1, dtype=torch.long, device=query.device)
    best_score = torch.full((b,), float("-inf"), device=query.device)
    if n == 0 or b == 0:
        return best_idx, best_score
    todo = torch.arange(b, device=query.device)
    k = _FAISS_FIRST_K
    while todo.numel() > 0:
        kk = min(k, n)
        scores, idx = knn_search(query[todo], keys, kk, use_gpu=use_gpu)
        scores, idx = scores.to(query.device), idx.to(query.device)
        ok = key_source[idx] != query_source[todo][:, None]
        has = ok.any(dim=1)
        first = ok.float().argmax(dim=1)  # first valid hit (results are best first)
        rows = todo[has]
        best_idx[rows] = idx[has, first[has]]
        best_score[rows] = scores[has, first[has]]
        todo = todo[~has]
        if kk >= n:  # every entry was seen: the remaining rows have no valid entry
            break
        if k * _FAISS_K_GROWTH > FAISS_GPU_MAX_K and todo.numel() > 0:
            # Still only own-source hits: exact masked search for these few rows.
            i, s = masked_top1(query[todo], query_source[todo], keys, key_source, chunk_size)
            best_idx[todo], best_score[todo] = i, s
            break
        k *= _FAISS_K_GROWTH
    return best_idx, best_score


# ------------------------------------------------------------------------------------------------
# Deterministic top-k (retrieval: the same neighbours, in the same order, on every backend)
# ------------------------------------------------------------------------------------------------
SEARCH_BACKENDS = ("faiss", "torch")
# The values of MEMORY_BANK.SEARCH: a backend, or "auto" (= torch: RingMemoryBank.search says why).
BANK_SEARCH_CHOICES = ("auto",) + SEARCH_BACKENDS


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
    def fn(q: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        s, i = knn_search(q, gallery, k, use_gpu="auto")  # k > FAISS_GPU_MAX_K: exact CPU search
        return s.to(q.device), i.to(q.device)

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
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"RETRIEVAL.BACKEND is {backend!r}; choose one of {list(SEARCH_BACKENDS)}.")
    queries, gallery = queries.float().contiguous(), gallery.float().contiguous()
    n_gallery = gallery.shape[0]
    if n_gallery == 0:
        raise ValueError("The gallery is empty: RETRIEVAL.GALLERY_SPLIT has no videos.")
    k = min(int(k), n_gallery)
    fn = _faiss_search_fn(gallery) if backend == "faiss" else _torch_search_fn(gallery)
    with torch.autocast(queries.device.type, enabled=False):  # float32 scores under AMP too
        return _knn_loop(queries, gallery, k, fn)


def _knn_loop(queries: torch.Tensor, gallery: torch.Tensor, k: int, fn: Callable) -> Tuple[torch.Tensor, torch.Tensor]:
    # knn's widening loop (see knn); split out so that it runs with autocast off.
    n_gallery = gallery.shape[0]
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
