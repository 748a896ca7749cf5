"""Weighted kNN classification (InstDisc votes) and chance levels, against direct computations."""
import math

import pytest
import torch

from ascnet.evaluation.knn import classification_chance_top1, knn_predict, knn_top1, retrieval_chance
from ascnet.evaluation.retrieval import evaluate_retrieval


def test_votes_are_temperature_weighted_sums():
    sims = torch.tensor([[0.9, 0.8, 0.7]], dtype=torch.float64)
    labels = torch.tensor([[1, 0, 0]])
    t = 0.07
    votes = knn_predict(sims, labels, num_classes=3, k=3, temperature=t)[0]
    w = [math.exp(s / t) for s in (0.9, 0.8, 0.7)]
    assert votes.tolist() == pytest.approx([(w[1] + w[2]) / sum(w), w[0] / sum(w), 0.0])
    # One neighbour at 0.9 outweighs two at 0.8 and 0.7 with T = 0.07 (e^(0.1/0.07) = 4.2 > 1 + e^(-0.1/0.07)),
    # but not with a high temperature (plain majority).
    assert knn_top1(sims, labels, torch.tensor([1]), 3, ks=[3])["knn3_top1"] == 100.0
    assert knn_top1(sims, labels, torch.tensor([0]), 3, ks=[3], temperature=100.0)["knn3_top1"] == 100.0
    # k clipped to the neighbours given; k = 1 is the nearest neighbour's label.
    assert knn_top1(sims, labels, torch.tensor([1]), 3, ks=[1, 200]) == {"knn1_top1": 100.0, "knn200_top1": 100.0}


def test_ties_go_to_the_smallest_class():
    sims = torch.tensor([[0.5, 0.5]])
    assert knn_top1(sims, torch.tensor([[2, 1]]), torch.tensor([1]), 3, ks=[2])["knn2_top1"] == 100.0


def test_knn_in_retrieval_matches_a_brute_force_vote():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=1)
    gal = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    ql, gl = torch.randint(0, 4, (30,), generator=g), torch.randint(0, 4, (50,), generator=g)
    res = evaluate_retrieval(q, gal, ql, gl, topk=(1, 5), backend="torch", knn_ks=(20, 200))
    sims = q.double() @ gal.double().T
    for k, key in ((20, "knn20_top1"), (200, "knn200_top1")):
        kk = min(k, 50)
        top = sims.topk(kk, dim=1)
        votes = torch.zeros(30, 4, dtype=torch.float64).scatter_add_(1, gl[top.indices], torch.exp(top.values / 0.07))
        assert res[key] == pytest.approx(float((votes.argmax(1) == ql).double().mean() * 100))
    assert res["neighbors"].shape == (30, 5) and res["similarities"].shape == (30, 5)


def test_chance_levels():
    gl = torch.tensor([0, 0, 0, 1])  # 3/4 of the gallery is class 0
    ql = torch.tensor([0, 1])
    c = retrieval_chance(ql, gl, (1, 2, 10))
    assert c["top1"] == pytest.approx(100 * (0.75 + 0.25) / 2)
    # top-2: class 0 always hit; class 1 missed with C(3,2)/C(4,2) = 1/2.
    assert c["top2"] == pytest.approx(100 * (1.0 + 0.5) / 2) and c["top10"] == pytest.approx(100.0)
    assert classification_chance_top1(8) == pytest.approx(12.5)
