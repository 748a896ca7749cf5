"""Optimiser groups, lr scaling, LARS and the warm-up + cosine schedule values."""
import math

import pytest
import torch
from torch import nn

from ascnet.config import get_cfg
from ascnet.solver import LARS, build_lr_scheduler, build_optimizer, get_param_groups


def _model():
    m = nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), nn.Flatten(), nn.LazyLinear(2))
    m(torch.zeros(2, 3, 3, 3, 3))  # materialise the lazy layer
    return m


def _cfg(**solver):
    cfg = get_cfg()
    cfg.TRAIN.BATCH_SIZE = 128
    for k, v in solver.items():
        cfg.SOLVER[k] = v
    return cfg


def test_weight_decay_groups_exclude_norm_and_bias():
    m = _model()
    m[0].bias.requires_grad_(False)  # frozen parameters are left out
    groups = get_param_groups(m, 1e-4)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert decay == {id(m[0].weight), id(m[3].weight)}
    assert no_decay == {id(m[1].weight), id(m[1].bias), id(m[3].bias)}
    assert groups[0]["weight_decay"] == 1e-4 and groups[1]["weight_decay"] == 0.0
    assert groups[1]["lars_exclude"] and not groups[0]["lars_exclude"]


def test_sgd_lr_scaled_with_batch():
    cfg = _cfg(BASE_LR=0.1, BASE_BATCH_SIZE=64, NESTEROV=True)
    opt = build_optimizer(cfg, _model())
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["lr"] == pytest.approx(0.2) for g in opt.param_groups)
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in opt.param_groups)
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 1e-4]


def test_no_trainable_parameter_is_a_clear_error():
    m = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        build_optimizer(_cfg(), m)


def test_lars_matches_hand_computation():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(3, 4))
    b = nn.Parameter(torch.randn(3))
    opt = LARS([{"params": [w], "weight_decay": 0.1, "lars_exclude": False},
                {"params": [b], "weight_decay": 0.0, "lars_exclude": True}], lr=0.5, momentum=0.9, eta=0.01)
    gw, gb = torch.randn(3, 4), torch.randn(3)
    w0, b0 = w.detach().clone(), b.detach().clone()
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    g = gw + 0.1 * w0
    trust = 0.01 * w0.norm() / g.norm()
    assert torch.allclose(w, w0 - 0.5 * g * trust)
    assert torch.allclose(b, b0 - 0.5 * gb)  # excluded: no adaptation
    # Second step uses momentum.
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    assert torch.allclose(b, b0 - 0.5 * gb - 0.5 * (0.9 * gb + gb))


def test_lars_built_from_config():
    opt = build_optimizer(_cfg(OPTIMIZING_METHOD="lars", LARS_ETA=0.02), _model())
    assert isinstance(opt, LARS) and opt.param_groups[0]["eta"] == 0.02


def test_adamw_built_from_config_with_the_decay_groups():
    m = _model()
    opt = build_optimizer(_cfg(OPTIMIZING_METHOD="adamw", BASE_LR=0.004, BASE_BATCH_SIZE=64, WEIGHT_DECAY=0.05), m)
    assert type(opt) is torch.optim.AdamW
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == pytest.approx(0.008) for g in opt.param_groups)  # 0.004 * 128 / 64
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in m.parameters()}
    with pytest.raises(ValueError, match="adamw"):
        build_optimizer(_cfg(OPTIMIZING_METHOD="adam"), m)


def _lrs(cfg, iters_per_epoch, n):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_lr_scheduler(cfg, opt, iters_per_epoch)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out, sched


def test_warmup_then_cosine_values():
    cfg = _cfg(BASE_LR=1.0, BASE_BATCH_SIZE=128, WARMUP_EPOCHS=1.0, MAX_EPOCH=3, COSINE_END_LR_RATIO=0.1,
               WARMUP_START_FACTOR=0.0)
    lrs, _ = _lrs(cfg, 4, 12)  # 4 warm-up iterations, then 8 cosine iterations
    assert lrs[:4] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    for k in range(4, 12):
        p = (k - 4) / 8
        assert lrs[k] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
    assert lrs[4] == pytest.approx(1.0)


def test_constant_policy_and_max_iters_cap():
    cfg = _cfg(BASE_LR=1.0, BASE_BATCH_SIZE=128, WARMUP_EPOCHS=0.5, MAX_EPOCH=100, LR_POLICY="constant")
    lrs, _ = _lrs(cfg, 4, 6)
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 1.0])
    # MAX_ITERS caps the schedule length: the cosine reaches its end at MAX_ITERS.
    cfg = _cfg(BASE_LR=1.0, BASE_BATCH_SIZE=128, WARMUP_EPOCHS=0.0, MAX_EPOCH=100)
    cfg.TRAIN.MAX_ITERS = 5
    lrs, _ = _lrs(cfg, 4, 5)
    assert lrs[0] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 5)))


def test_scheduler_state_round_trip():
    cfg = _cfg(BASE_LR=1.0, BASE_BATCH_SIZE=128, WARMUP_EPOCHS=1.0, MAX_EPOCH=3)
    lrs, sched = _lrs(cfg, 4, 7)
    opt = sched.optimizer
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_lr_scheduler(cfg, opt2, 4)
    opt2.load_state_dict(opt.state_dict())  # the optimiser holds the current lr
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == 7 and opt2.param_groups[0]["lr"] == pytest.approx(sched.get_last_lr()[0])
    opt.step(), opt2.step()
    sched.step(), sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_empty_loader_is_a_clear_error():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="TRAIN.BATCH_SIZE"):
        build_lr_scheduler(_cfg(), opt, 0)


def test_resume_with_longer_schedule_follows_new_config():
    cfg = _cfg(BASE_LR=1.0, BASE_BATCH_SIZE=128, WARMUP_EPOCHS=0.0, MAX_EPOCH=2)
    _, sched = _lrs(cfg, 4, 8)  # ran to the end: lr reached 0
    longer = _cfg(BASE_LR=1.0, BASE_BATCH_SIZE=128, WARMUP_EPOCHS=0.0, MAX_EPOCH=4)
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_lr_scheduler(longer, opt2, 4)
    sched2.load_state_dict(sched.state_dict())
    opt2.step()
    sched2.step()  # iteration 9 of 16
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 16)))
