"""Retrieval search and metrics against a brute-force numpy reference."""
import numpy as np
import pytest
import torch

from ascnet.evaluation.metrics import (
    average_precision_from_ranking,
    classification_topk,
    retrieval_map,
    retrieval_topk_from_neighbors,
)
from ascnet.evaluation.retrieval import evaluate_retrieval, finalize_features, pool_clip_features


# ----------------------------------------------------------------------------------------------
# Brute-force reference (float64 numpy, explicit loops where it matters)
# ----------------------------------------------------------------------------------------------
def _ref_ranking(q, g):
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    # lexsort: last key is primary -> by decreasing similarity, then by increasing index.
    idx = np.arange(g.shape[0])
    return [np.lexsort((idx, -sims[i])) for i in range(q.shape[0])]


def _ref_topk(q, g, ql, gl, ks):
    ranks = _ref_ranking(q, g)
    out = {}
    for k in ks:
        hits = [any(gl[j] == ql[i] for j in r[:k]) for i, r in enumerate(ranks)]
        out[f"top{k}"] = 100.0 * np.mean(hits)
    return out


def _ref_map(q, g, ql, gl):
    aps = []
    for i, r in enumerate(_ref_ranking(q, g)):
        n_rel = int((gl == ql[i]).sum())
        if n_rel == 0:
            aps.append(0.0)
            continue
        hits, s = 0, 0.0
        for rank, j in enumerate(r, start=1):
            if gl[j] == ql[i]:
                hits += 1
                s += hits / rank
        aps.append(s / n_rel)
    return 100.0 * float(np.mean(aps))


def _integer_problem(seed=0, nq=40, ng=70, d=6, num_classes=7):
    """Small-integer features: every dot product is exact in float32, so ties are exact ties."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    g = rng.integers(-2, 3, size=(ng, d)).astype(np.float32)
    g[10:20] = g[0]  # a block of identical gallery rows: many exact ties
    q[:5] = g[0]
    ql = rng.integers(0, num_classes, size=nq)
    # Uneven class sizes: class 6 has a single gallery video, so k=5..50 exceed it.
    gl = rng.integers(0, num_classes - 1, size=ng)
    gl[33] = num_classes - 1
    ql[-1] = num_classes  # a query class absent from the gallery
    return q, g, ql, gl


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_topk_and_map_match_bruteforce_with_ties(backend):
    q, g, ql, gl = _integer_problem()
    ks = [1, 5, 10, 20, 50, 100]  # 100 > gallery size: clipped
    res = evaluate_retrieval(
        torch.from_numpy(q), torch.from_numpy(g), torch.from_numpy(ql), torch.from_numpy(gl), ks, backend=backend
    )
    ref = _ref_topk(q, g, ql, gl, ks)
    for k in ks:
        assert res[f"top{k}"] == pytest.approx(ref[f"top{k}"], abs=1e-9), k
    assert res["mAP"] == pytest.approx(_ref_map(q, g, ql, gl), abs=1e-9)
    # The neighbour order itself equals the reference ranking (ties by gallery index).
    ranks = _ref_ranking(q, g)
    for i in range(q.shape[0]):
        assert res["neighbors"][i].tolist() == ranks[i][: res["neighbors"].shape[1]].tolist()


def test_random_features_match_reference_and_backends_agree():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    g = rng.standard_normal((120, 16)).astype(np.float32)
    ql, gl = rng.integers(0, 9, 50), rng.integers(0, 9, 120)
    qt, gt = finalize_features(torch.from_numpy(q), torch.from_numpy(g), center=False)
    args = (qt, gt, torch.from_numpy(ql), torch.from_numpy(gl), [1, 5, 10, 20, 50])
    r_faiss, r_torch = evaluate_retrieval(*args, backend="faiss"), evaluate_retrieval(*args, backend="torch")
    assert torch.equal(r_faiss["neighbors"], r_torch["neighbors"])
    ref = _ref_topk(qt.numpy(), gt.numpy(), ql, gl, [1, 5, 10, 20, 50])
    for k in (1, 5, 10, 20, 50):
        assert r_faiss[f"top{k}"] == r_torch[f"top{k}"] == pytest.approx(ref[f"top{k}"])
    assert r_faiss["mAP"] == r_torch["mAP"] == pytest.approx(_ref_map(qt.numpy(), gt.numpy(), ql, gl), abs=1e-6)
    # Deterministic: the same numbers twice.
    again = evaluate_retrieval(*args, backend="faiss")
    assert torch.equal(again["neighbors"], r_faiss["neighbors"]) and again["mAP"] == r_faiss["mAP"]


def test_average_precision_hand_computed():
    rel = torch.tensor([[True, False, True, False], [False, False, False, False], [False, True, False, False]])
    ap = average_precision_from_ranking(rel)
    assert ap.tolist() == pytest.approx([(1 / 1 + 2 / 3) / 2, 0.0, 0.5])


def test_retrieval_topk_from_neighbors_any_of_k():
    nbr_labels = torch.tensor([[3, 1, 2], [0, 0, 0]])
    res = retrieval_topk_from_neighbors(nbr_labels, torch.tensor([2, 1]), [1, 2, 3, 10])
    assert res == {"top1": 0.0, "top2": 0.0, "top3": 50.0, "top10": 50.0}


def test_map_chunking_does_not_change_result():
    q, g, ql, gl = _integer_problem(seed=3)
    args = (torch.from_numpy(q), torch.from_numpy(g), torch.from_numpy(ql), torch.from_numpy(gl))
    assert retrieval_map(*args, chunk_size=7) == retrieval_map(*args, chunk_size=1000)


def test_pooling_and_centring():
    clip = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])  # one video, two views
    pooled = pool_clip_features(clip)
    assert torch.allclose(pooled, torch.tensor([[0.3, 0.9]]))
    q, g = finalize_features(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0], [3.0, 1.0]]), center=True)
    assert torch.allclose(g, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(q, torch.tensor([[0.0, 0.0]]))  # the query equals the gallery mean
    q, _ = finalize_features(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]]), center=False)
    assert torch.allclose(q, torch.tensor([[1.0, 0.0]]))


def test_classification_topk_with_ties_and_small_k():
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 0, 0])
    res = classification_topk(probs, labels, ks=(1, 2, 5))
    # Row 0: tie 0/1 broken by class index -> predicted 0 -> wrong at top1, right at top2.
    assert res["top1"] == 0.0
    assert res["top2"] == pytest.approx(100 / 3)
    assert res["top5"] == 100.0  # k clipped to 3 classes
    assert res["num_videos"] == 3
