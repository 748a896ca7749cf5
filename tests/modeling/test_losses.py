"""ACP / SCP losses against hand computations."""
import math

import pytest
import torch

from ascnet.config import get_cfg
from ascnet.modeling.losses import ACPLoss, SCPLoss, build_loss, normalized_mse


def test_normalized_mse_hand_values():
    pred = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    target = torch.tensor([[5.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    # same direction -> 0; opposite -> 4; orthogonal -> 2
    assert torch.allclose(normalized_mse(pred, target), torch.tensor([0.0, 4.0, 2.0]), atol=1e-6)


def test_acp_two_speeds_equals_formula():
    # video 0: p1=(1,0) p2=(0,1); z1=(1,0) z2=(1,1)/sqrt2
    # ||n(p1)-n(z2)||^2 = 2-2cos45 ; ||n(p2)-n(z1)||^2 = 2-0 = 2
    # video 1: p1=(2,0) p2=(-1,0); z1=(1,0) z2=(-3,0): terms 2-2(-1)=4 and 2-2(-1)=4
    pred = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [-1.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [-3.0, 0.0]]])
    v0 = (2 - 2 * math.cos(math.pi / 4)) + 2.0
    v1 = 4.0 + 4.0
    loss = build_loss(get_cfg(), "ACPLoss")(pred, target)
    assert loss.item() == pytest.approx((v0 + v1) / 2, abs=1e-6)


def test_acp_three_speeds_averages_pairs():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    ref = 0.0
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        ref = ref + (normalized_mse(pred[:, i], target[:, j]) + normalized_mse(pred[:, j], target[:, i])).mean()
    assert ACPLoss()(pred, target).item() == pytest.approx(ref.item() / 3, abs=1e-5)


def test_acp_gradient_only_to_prediction():
    pred = torch.randn(3, 2, 4, requires_grad=True)
    target = torch.randn(3, 2, 4, requires_grad=True)
    ACPLoss()(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None


def test_acp_rejects_bad_shapes():
    with pytest.raises(ValueError, match="S >= 2"):
        ACPLoss()(torch.randn(2, 1, 4), torch.randn(2, 1, 4))


def test_scp_hand_value_and_mask():
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    pos = torch.tensor([[1.0, 0.0], [0.0, -1.0], [7.0, 7.0]])
    loss = SCPLoss()(pred, pos)
    assert loss.item() == pytest.approx((0.0 + 4.0 + 0.0) / 3, abs=1e-6)
    masked = SCPLoss()(pred, pos, valid=torch.tensor([False, True, False]))
    assert masked.item() == pytest.approx(4.0, abs=1e-6)
    none = SCPLoss()(pred, pos, valid=torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0
    none.backward()  # still part of the graph
    assert pred.grad is not None and torch.all(pred.grad == 0)
