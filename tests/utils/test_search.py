"""ascnet.utils.search: faiss and torch give the same neighbours as a brute-force reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ascnet.utils.search import FAISS_GPU_MAX_K, faiss_has_gpu, knn, knn_search, masked_top1, masked_top1_faiss


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


def test_masked_top1_chunking_is_exact():
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(6, 5, generator=g), torch.randn(37, 5, generator=g)
    kv = torch.randint(-1, 4, (37,), generator=g)
    qv = torch.arange(6) % 4
    ref = (q @ k.T).masked_fill((kv[None] == qv[:, None]) | (kv[None] < 0), float("-inf")).argmax(1)
    for chunk in (1, 5, 37, 1000):
        idx, _ = masked_top1(q, qv, k, kv, chunk)
        assert torch.equal(idx, ref)


@pytest.mark.parametrize("own", [5, 600])  # 600 > the widest faiss k tried: exact torch fallback
def test_masked_top1_faiss_equals_torch(own):
    g = torch.Generator().manual_seed(3)
    keys = F.normalize(torch.randn(own + 200, 16, generator=g), dim=1)
    kv = torch.cat([torch.zeros(own, dtype=torch.long), torch.randint(1, 40, (200,), generator=g)])
    # Queries near video 0's entries: their nearest keys are all their own video's.
    q = F.normalize(keys[:12] + 0.01 * torch.randn(12, 16, generator=g), dim=1)
    qv = torch.zeros(12, dtype=torch.long)
    qv[6:] = kv[own + 3]  # half the queries belong to another video
    i_t, s_t = masked_top1(q, qv, keys, kv, chunk_size=64)
    i_f, s_f = masked_top1_faiss(q, qv, keys, kv, chunk_size=64)
    assert torch.equal(i_t, i_f) and torch.allclose(s_t, s_f, atol=1e-5)
    assert not torch.any(kv[i_f] == qv)


def test_knn_widens_search_for_ties_at_the_kth_position():
    g = torch.zeros(30, 2)
    g[:, 0] = 1.0  # all 30 gallery rows tie
    q = torch.tensor([[1.0, 0.0]])
    for backend in ("torch", "faiss"):
        s, i = knn(q, g, 3, backend=backend)
        assert i.tolist() == [[0, 1, 2]], backend  # smallest indices among the tie group


def test_knn_backends_agree_beyond_the_faiss_gpu_k_limit():
    g = torch.Generator().manual_seed(4)
    q, x = torch.randn(3, 8, generator=g), torch.randn(FAISS_GPU_MAX_K + 100, 8, generator=g)
    k = FAISS_GPU_MAX_K + 10
    s_f, i_f = knn(q, x, k, backend="faiss")
    s_t, i_t = knn(q, x, k, backend="torch")
    assert i_f.shape == (3, k) and torch.equal(i_f, i_t) and torch.equal(s_f, s_t)
    ref = torch.sort(-(q.double() @ x.double().T), dim=1, stable=True).indices[:, :k]
    assert torch.equal(i_f, ref)


@pytest.mark.skipif(not torch.cuda.is_available() or not faiss_has_gpu(), reason="needs a GPU and faiss-gpu")
def test_knn_search_gpu_k_above_limit_is_exact():
    q, x = torch.randn(4, 16, device="cuda"), torch.randn(FAISS_GPU_MAX_K + 50, 16, device="cuda")
    s, i = knn_search(q, x, FAISS_GPU_MAX_K + 20, use_gpu=True)
    s_cpu, i_cpu = knn_search(q.cpu(), x.cpu(), FAISS_GPU_MAX_K + 20, use_gpu=False)
    assert i.is_cuda and torch.equal(i.cpu(), i_cpu)


def test_search_is_defined_once():
    # faiss is imported, and masked top-1 written, in ascnet/utils/search.py only.
    import os
    import re

    root = os.path.join(os.path.dirname(__file__), "..", "..", "ascnet")
    hits = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                text = open(os.path.join(dirpath, f), encoding="utf-8").read()
                if re.search(r"^\s*(import faiss|from faiss)|def (masked_top1|knn)\b", text, re.M):
                    hits.append(f)
    assert hits == ["search.py"]


def test_masked_top1_float32_under_cpu_bf16_autocast_and_no_host_sync():
    from ascnet.utils.host_sync import HostSyncCounter

    g = torch.Generator().manual_seed(4)
    base = F.normalize(torch.randn(1, 32, generator=g), dim=1)
    keys = F.normalize(base + 3e-3 * torch.randn(300, 32, generator=g), dim=1)  # near-duplicates
    kv = torch.arange(300) % 7
    q = F.normalize(base + 3e-3 * torch.randn(9, 32, generator=g), dim=1)
    qv = torch.arange(9) % 7  # every query's own source holds some of the nearest keys
    ref = (q @ keys.T).masked_fill(kv[None] == qv[:, None], float("-inf")).argmax(1)
    with torch.autocast("cpu", dtype=torch.bfloat16), HostSyncCounter() as syncs:
        idx, score = masked_top1(q, qv, keys, kv, chunk_size=64)
    assert torch.equal(idx, ref) and score.dtype == torch.float32
    assert syncs.total == 0, syncs.counts
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, i = knn(q, keys, 5, backend="torch")
    assert torch.equal(i, (q.double() @ keys.double().T).topk(5, dim=1).indices)
