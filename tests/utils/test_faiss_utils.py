"""faiss wrappers: same neighbours as a brute-force torch reference."""
import numpy as np
import pytest
import torch

from ascnet.utils.faiss_utils import faiss_has_gpu, knn_search


def test_knn_search_matches_torch_topk():
    g = torch.Generator().manual_seed(0)
    q, x = torch.randn(7, 16, generator=g), torch.randn(50, 16, generator=g)
    scores, idx = knn_search(q, x, 5, use_gpu=False)
    ref_s, ref_i = (q @ x.T).topk(5, dim=1)
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64 and idx.shape == (7, 5)
    assert torch.equal(idx, ref_i)
    assert torch.allclose(scores, ref_s, atol=1e-5)


def test_knn_search_numpy_in_numpy_out_and_k_clamped():
    rng = np.random.default_rng(0)
    q, x = rng.standard_normal((3, 8)), rng.standard_normal((4, 8))  # float64 in
    scores, idx = knn_search(q, x, 10)
    assert isinstance(idx, np.ndarray) and idx.shape == (3, 4)
    assert (idx >= 0).all()
    assert np.array_equal(idx, np.argsort(-(q @ x.T), axis=1))


def test_knn_search_errors():
    with pytest.raises(ValueError, match="same d"):
        knn_search(torch.randn(2, 3), torch.randn(4, 5), 1)
    if not faiss_has_gpu():
        with pytest.raises(RuntimeError, match="GPU"):
            knn_search(torch.randn(2, 3), torch.randn(4, 3), 1, use_gpu=True)


@pytest.mark.skipif(not torch.cuda.is_available() or not faiss_has_gpu(), reason="needs a GPU and faiss-gpu")
def test_knn_search_gpu_matches_cpu():
    q, x = torch.randn(9, 32, device="cuda"), torch.randn(100, 32, device="cuda")
    s_gpu, i_gpu = knn_search(q, x, 3, use_gpu=True)
    s_cpu, i_cpu = knn_search(q.cpu(), x.cpu(), 3, use_gpu=False)
    assert i_gpu.is_cuda and torch.equal(i_gpu.cpu(), i_cpu)
