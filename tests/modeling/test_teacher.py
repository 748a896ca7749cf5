"""The momentum teacher (ascnet/modeling/teacher.py) on a tiny online network: the target is a
gradient-free copy without predictors, the EMA follows the cosine schedule and copies buffers,
the BN policy, and checkpoint keys free of DDP's `module.` level."""
import pytest
import torch
from torch import nn

from ascnet.config import get_cfg
from ascnet.modeling.teacher import MomentumTeacher, OnlineNetwork, ema_momentum


class _Toy(MomentumTeacher):
    def __init__(self, cfg):
        super().__init__()
        backbone = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
        self.init_teacher(cfg, OnlineNetwork(backbone, {"proj": nn.Linear(6, 3)}, {"pred": nn.Linear(3, 3)}))
        self.train(self.training)


def _cfg(**teacher):
    cfg = get_cfg()
    for k, v in teacher.items():
        cfg.TEACHER[k] = v
    return cfg


def test_target_is_a_frozen_copy_without_predictors():
    torch.manual_seed(0)
    m = _Toy(_cfg())
    names = {k for k, _ in m.target.named_parameters()}
    assert names == {k for k, _ in m.online.named_parameters() if not k.startswith("pred.")}
    assert not any(p.requires_grad for p in m.target.parameters())
    for k, p in m.target.named_parameters():
        assert torch.equal(p, dict(m.online.named_parameters())[k])
    x = torch.randn(5, 4)
    (z,), (p,) = m.target(x), m.online(x)
    assert z.shape == p.shape == (5, 3)
    with pytest.raises(ValueError, match="One predictor per projection"):
        OnlineNetwork(nn.Identity(), {"a": nn.Identity(), "b": nn.Identity()}, {"c": nn.Identity()})


def test_after_step_is_the_cosine_ema_and_copies_buffers():
    torch.manual_seed(0)
    m = _Toy(_cfg(EMA_BASE=0.9))
    before = {k: p.clone() for k, p in m.target.named_parameters()}
    with torch.no_grad():
        for p in m.online.parameters():
            p.add_(1.0)
    m.online(torch.randn(8, 4))  # BN running statistics move
    out = m.after_step(3, 10)
    tau = ema_momentum(0.9, 3, 10)
    assert out == {"ema_tau": tau} and int(m.iteration) == 4
    online = dict(m.online.named_parameters())
    for k, p in m.target.named_parameters():
        torch.testing.assert_close(p, tau * before[k] + (1 - tau) * online[k])
    online_buffers = dict(m.online.named_buffers())
    for k, b in m.target.named_buffers():
        assert torch.equal(b, online_buffers[k]), k


@pytest.mark.parametrize("mode,target_training", [("train", True), ("eval", False)])
def test_bn_mode_sets_the_targets_mode(mode, target_training):
    m = _Toy(_cfg(BN_MODE=mode)).train()
    assert m.online.training and m.target.training == target_training
    assert not m.eval().target.training


def test_unknown_bn_mode_names_the_key():
    with pytest.raises(ValueError, match=r"TEACHER.BN_MODE is 'frozen'; choose one of \['train', 'eval'\]"):
        _Toy(_cfg(BN_MODE="frozen"))


def test_checkpoint_keys_are_the_same_wrapped_or_not():
    torch.manual_seed(0)
    plain = _Toy(_cfg())
    wrapped = _Toy(_cfg())
    wrapped.wrap_ddp(nn.DataParallel)  # a `module.` level, as DDP adds (no process group: no broadcast)
    assert wrapped.online_module is not wrapped.online and wrapped.backbone is wrapped.online.module.backbone
    assert set(wrapped.state_dict()) == set(plain.state_dict())
    assert not any(".module." in k for k in wrapped.state_dict())
    wrapped.load_state_dict(plain.state_dict())
    for k, v in plain.state_dict().items():
        assert torch.equal(wrapped.state_dict()[k], v), k
    assert "online.backbone." in type(plain).BACKBONE_PREFIXES
