"""Heads: MLPHead (Figure 1), LinearHead (Table 1), IdentityHead, and their cfg builders."""
import pytest
import torch
from torch import nn

from ascnet.config import get_cfg
from ascnet.modeling.heads import (
    HEAD_REGISTRY,
    build_cls_head,
    build_head,
    build_predictor,
    build_projection,
)


def test_mlp_head_defaults_are_figure1():
    cfg = get_cfg()
    head = build_projection(cfg, 512)
    layers = list(head.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features) == (512, 4096)
    assert layers[1].num_features == 4096
    assert (layers[3].in_features, layers[3].out_features) == (4096, 256)
    assert head.out_dim == 256
    # Nothing else holds parameters.
    assert sum(p.numel() for p in head.parameters()) == 512 * 4096 + 4096 + 2 * 4096 + 4096 * 256 + 256


def test_predictor_maps_projection_dim_to_itself():
    cfg = get_cfg()
    cfg.MODEL.PROJECTION.OUT_DIM = 32
    cfg.MODEL.PREDICTOR.HIDDEN_DIM = 64
    pred = build_predictor(cfg)
    assert (pred.net[0].in_features, pred.net[0].out_features, pred.net[3].out_features) == (32, 64, 32)


def test_mlp_head_forward_matches_manual_computation():
    torch.manual_seed(0)
    head = build_head("MLPHead", 8, 4, hidden_dim=16).train()
    x = torch.randn(5, 8)
    h = x @ head.net[0].weight.T + head.net[0].bias
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
    h = torch.relu(h * head.net[1].weight + head.net[1].bias)
    ref = h @ head.net[3].weight.T + head.net[3].bias
    torch.testing.assert_close(head(x), ref, rtol=1e-5, atol=1e-5)


def test_linear_head():
    cfg = get_cfg()
    cfg.MODEL.NUM_CLASSES = 7
    cfg.MODEL.CLS_HEAD.DROPOUT_RATE = 0.5
    head = build_cls_head(cfg, 16).eval()
    x = torch.randn(3, 16)
    torch.testing.assert_close(head(x), x @ head.fc.weight.T + head.fc.bias)
    assert head.out_dim == 7 and isinstance(head.dropout, nn.Dropout)
    with pytest.raises(ValueError, match="DROPOUT_RATE"):
        build_head("LinearHead", 16, 7, dropout_rate=1.5)


def test_identity_head():
    head = build_head("IdentityHead", 16, 16)
    x = torch.randn(2, 16)
    assert head(x) is x and head.out_dim == 16
    assert list(head.parameters()) == []
    with pytest.raises(ValueError, match="out_dim"):
        build_head("IdentityHead", 16, 8)


def test_registry_lists_heads():
    assert {"MLPHead", "LinearHead", "IdentityHead"} <= set(HEAD_REGISTRY.names())
