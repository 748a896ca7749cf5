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


def test_acp_two_speeds_is_the_per_clip_mean():
    # video 0: p1=(1,0) p2=(0,1); z1=(1,0) z2=(1,1)/sqrt2
    # ||n(p1)-n(z2)||^2 = 2-2cos45 ; ||n(p2)-n(z1)||^2 = 2-0 = 2
    # video 1: p1=(2,0) p2=(-1,0); z1=(1,0) z2=(-3,0): terms 2-2(-1)=4 and 2-2(-1)=4
    pred = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [-1.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [-3.0, 0.0]]])
    per_clip = [2 - 2 * math.cos(math.pi / 4), 2.0, 4.0, 4.0]  # one term per clip (4 clips)
    loss = build_loss(get_cfg(), "ACPLoss")(pred, target)
    assert loss.item() == pytest.approx(sum(per_clip) / 4, abs=1e-6)
    # The method's formula sums both directions per video: twice the per-clip mean.
    summed = ((per_clip[0] + per_clip[1]) + (per_clip[2] + per_clip[3])) / 2
    assert 2 * loss.item() == pytest.approx(summed, abs=1e-6)


def test_acp_three_speeds_per_clip_mean_over_other_speeds():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    terms = []
    for n in range(4):
        for i in range(3):  # clip i: the mean of its terms against the two other speeds
            others = [j for j in range(3) if j != i]
            terms.append(sum(float(normalized_mse(pred[n, i], target[n, j])) for j in others) / 2)
    assert ACPLoss()(pred, target).item() == pytest.approx(sum(terms) / len(terms), abs=1e-5)


@pytest.mark.parametrize("s", [2, 3])
def test_acp_and_scp_under_cpu_bf16_autocast_equal_float32(s):
    # Inputs that agree to about 1e-3 (cosines near 1): bf16 arithmetic would be ~1e-2 off.
    g = torch.Generator().manual_seed(4)
    base = torch.randn(6, 1, 64, generator=g)
    pred = base + 1e-3 * torch.randn(6, s, 64, generator=g)
    target = base + 1e-3 * torch.randn(6, s, 64, generator=g)
    valid = torch.tensor([True, False] * (3 * s))
    ref_acp = ACPLoss()(pred, target)
    ref_scp = SCPLoss()(pred.flatten(0, 1), target.flatten(0, 1), valid)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        acp = ACPLoss()(pred, target)
        scp = SCPLoss()(pred.flatten(0, 1), target.flatten(0, 1), valid)
    assert acp.dtype == scp.dtype == torch.float32
    assert acp.item() == pytest.approx(ref_acp.item(), abs=1e-5)
    assert scp.item() == pytest.approx(ref_scp.item(), abs=1e-5)


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
    # A per-clip mean over the clips that have a positive.
    masked = SCPLoss()(pred, pos, valid=torch.tensor([True, True, False]))
    assert masked.item() == pytest.approx((0.0 + 4.0) / 2, abs=1e-6)
    none = SCPLoss()(pred, pos, valid=torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0
    none.backward()  # still part of the graph
    assert pred.grad is not None and torch.all(pred.grad == 0)
