"""S3DG: 1024-d features at 112 and 224 px, gating modules, S3D layout, tiny variants."""
import pytest
import torch
import torchvision

from ascnet.config import get_cfg
from ascnet.modeling import build_backbone
from ascnet.modeling.backbone.s3dg import InceptionBlock, SelfGating, create_s3dg


def _cfg(width_mult=1.0, norm="batchnorm"):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "S3DG"
    cfg.MODEL.BACKBONE.WIDTH_MULT = width_mult
    cfg.MODEL.BACKBONE.NORM = norm
    return cfg


@pytest.fixture(scope="module")
def s3dg():
    torch.manual_seed(0)
    return build_backbone(_cfg()).eval()


@pytest.mark.parametrize("size", [112, 224])
def test_output_is_1024d(s3dg, size):
    with torch.no_grad():
        feats = s3dg.forward_features(torch.randn(1, 3, 16, size, size))
    assert s3dg.out_dim == 1024
    last = feats[-1]
    assert last.shape == (1, 1024, 2, size // 32, size // 32)
    out = last.mean(dim=(2, 3, 4))
    assert out.shape == (1, 1024) and torch.isfinite(out).all()


def test_layout_and_gating(s3dg):
    assert s3dg.stage_names == [
        "Conv3d_1a_7x7", "MaxPool_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool_3a_3x3",
        "Mixed_3b", "Mixed_3c", "MaxPool_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
        "Mixed_4f", "MaxPool_5a", "Mixed_5b", "Mixed_5c",
    ]
    blocks = [b for b in s3dg.blocks if isinstance(b, InceptionBlock)]
    assert [b.out_channels for b in blocks] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    assert all(isinstance(b.gating, SelfGating) for b in blocks)
    assert [b.gating.fc.in_features for b in blocks] == [b.out_channels for b in blocks]
    stem = s3dg.blocks[0]
    assert stem[0][0].kernel_size == (1, 7, 7) and stem[0][0].stride == (1, 2, 2)
    assert stem[1][0].kernel_size == (7, 1, 1) and stem[1][0].stride == (2, 1, 1)


def test_without_gating_matches_torchvision_s3d_parameter_shapes():
    ours = create_s3dg(gating=False)
    ref = torchvision.models.video.s3d().features
    assert sorted(tuple(p.shape) for p in ours.parameters()) == sorted(tuple(p.shape) for p in ref.parameters())


def test_gating_is_sigmoid_of_linear_of_pooled_input():
    torch.manual_seed(0)
    gate = SelfGating(4)
    x = torch.randn(2, 4, 3, 5, 5)
    w = torch.sigmoid(x.mean(dim=(2, 3, 4)) @ gate.fc.weight.T + gate.fc.bias)
    torch.testing.assert_close(gate(x), x * w[:, :, None, None, None])


@pytest.mark.parametrize("norm", ["batchnorm", "groupnorm"])
def test_tiny_variant_trains_at_8x64x64(norm):
    torch.manual_seed(0)
    model = build_backbone(_cfg(0.125, norm))
    assert model.out_dim == 128
    y = model(torch.randn(2, 3, 8, 64, 64))
    assert y.shape == (2, 128)
    y.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_too_small_input_error():
    model = build_backbone(_cfg(0.125)).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="at least"):
        model(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(ValueError, match="WIDTH_MULT"):
        build_backbone(_cfg(0.0))
