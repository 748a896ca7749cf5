"""Thin wrappers around faiss for exact inner-product k-nearest-neighbour search.

Used by the memory bank (SCP positive retrieval) and by the retrieval evaluation. faiss is
imported lazily so that importing ascnet never needs it.

Two builds of faiss may be installed (never both): ``faiss-gpu`` (Linux x86_64; imports and runs
its CPU indexes on a machine without GPU) and ``faiss-cpu``. A CPU-only build has no
``StandardGpuResources``; :func:`faiss_has_gpu` guards every GPU path.
"""
import functools
from typing import Tuple, Union

import numpy as np
import torch

Array = Union[torch.Tensor, np.ndarray]

__all__ = ["faiss_available", "faiss_has_gpu", "knn_search"]


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
    """Exact top-``k`` inner-product search of ``queries`` in ``gallery`` with faiss.

    Args:
        queries: (B, d) float array (torch tensor on any device, or numpy).
        gallery: (N, d) float array of the same kind.
        k: neighbours per query. Clamped to N, so the result has ``min(k, N)`` columns and never
            holds faiss's ``-1`` "no result" entries.
        use_gpu: True = faiss GPU brute force (raises when unavailable), False = CPU,
            "auto" = GPU when :func:`faiss_has_gpu` and ``queries`` is a CUDA tensor.

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
