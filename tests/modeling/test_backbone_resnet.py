"""R3D18 (Table 4) and R2Plus1D18 (Table 3): exact stage sizes and channel counts."""
import pytest
import torch
from torch import nn

from ascnet.config import get_cfg
from ascnet.modeling import build_backbone
from ascnet.modeling.backbone.resnet import Conv2Plus1d, r2plus1d_mid_channels


def _cfg(name, **backbone):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    for k, v in backbone.items():
        cfg.MODEL.BACKBONE[k] = v
    return cfg


def _tiny(name, norm="batchnorm"):
    return _cfg(name, WIDTHS=[4, 8, 8, 16], STEM_WIDTH=4, NORM=norm)


def test_r3d18_stage_sizes_match_table4():
    torch.manual_seed(0)
    model = build_backbone(_cfg("R3D18")).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 16, 112, 112))
        out = model.pool(feats[-1])
    sizes = [tuple(f.shape[1:]) for f in feats]
    assert model.stage_names == ["conv1", "pool1", "res2", "res3", "res4", "res5"]
    assert sizes == [
        (64, 16, 56, 56),
        (64, 8, 28, 28),
        (64, 8, 28, 28),
        (128, 4, 14, 14),
        (256, 2, 7, 7),
        (512, 1, 4, 4),
    ]
    assert out.shape == (1, 512) and model.out_dim == 512
    # 7x7x7 stem conv, a 3x3x3 max-pool, only 3x3x3 convs (and 1x1x1 shortcuts) in the stages.
    assert model.blocks[0].conv.kernel_size == (7, 7, 7)
    assert model.blocks[0].conv.stride == (1, 2, 2)
    assert isinstance(model.blocks[1], nn.MaxPool3d)
    stage_kernels = {m.kernel_size for b in model.blocks[2:] for m in b.modules() if isinstance(m, nn.Conv3d)}
    assert stage_kernels == {(3, 3, 3), (1, 1, 1)}
    shortcuts = [b.branch1_conv for s in model.blocks[2:] for b in s.res_blocks if b.branch1_conv is not None]
    assert [(c.out_channels, c.stride) for c in shortcuts] == [(128, (2, 2, 2)), (256, (2, 2, 2)), (512, (2, 2, 2))]


def test_r2plus1d18_stage_sizes_match_table3():
    torch.manual_seed(0)
    model = build_backbone(_cfg("R2Plus1D18")).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 16, 112, 112))
    assert model.stage_names == ["conv1", "res2", "res3", "res4", "res5"]
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 16, 56, 56),
        (64, 16, 56, 56),
        (128, 8, 28, 28),
        (256, 4, 14, 14),
        (512, 2, 7, 7),
    ]
    assert model.out_dim == 512


def test_r2plus1d18_mid_channels_match_table3():
    model = build_backbone(_cfg("R2Plus1D18"))
    convs = [m for m in model.modules() if isinstance(m, Conv2Plus1d)]
    mids = [c.mid_channels for c in convs]
    assert mids == [83] + [144] * 4 + [230] + [288] * 3 + [460] + [576] * 3 + [921] + [1152] * 3
    # Spatial 1x3x3 / temporal 3x1x1 split (the stem: 1x7x7 / 3x1x1), no full 3D kernel left.
    assert convs[0].conv_s.kernel_size == (1, 7, 7) and convs[0].conv_t.kernel_size == (3, 1, 1)
    assert all(c.conv_s.kernel_size == (1, 3, 3) and c.conv_t.kernel_size == (3, 1, 1) for c in convs[1:])
    assert not any(isinstance(m, nn.MaxPool3d) for m in model.modules())


def test_mid_channel_formula():
    assert r2plus1d_mid_channels(3, 64, t=3, d=7) == 83
    assert r2plus1d_mid_channels(64, 64) == 144
    assert r2plus1d_mid_channels(64, 128) == 230
    assert r2plus1d_mid_channels(128, 128) == 288
    # Same parameter count as the full conv, up to the floor.
    full = 3 * 3 * 3 * 64 * 128
    m = r2plus1d_mid_channels(64, 128)
    assert 0 <= full - (9 * 64 * m + 3 * m * 128) < 9 * 64 + 3 * 128


@pytest.mark.parametrize("name", ["R3D18", "R2Plus1D18"])
@pytest.mark.parametrize("norm", ["batchnorm", "groupnorm", "none"])
def test_tiny_variant_trains(name, norm):
    torch.manual_seed(0)
    model = build_backbone(_tiny(name, norm))
    assert model.out_dim == 16
    x = torch.randn(2, 3, 8, 64, 64)
    y = model(x)
    assert y.shape == (2, 16) and torch.isfinite(y).all()
    y.pow(2).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm3d, nn.GroupNorm))]
    if norm == "none":
        assert not norms
    else:
        assert norms and all(isinstance(m, nn.GroupNorm if norm == "groupnorm" else nn.BatchNorm3d) for m in norms)


def test_tiny_r2plus1d_uses_formula_for_given_widths():
    model = build_backbone(_tiny("R2Plus1D18"))
    mids = [m.mid_channels for m in model.modules() if isinstance(m, Conv2Plus1d)]
    assert mids[0] == r2plus1d_mid_channels(3, 4, t=3, d=7)
    assert mids[1] == r2plus1d_mid_channels(4, 4)
    assert mids[5:7] == [r2plus1d_mid_channels(4, 8), r2plus1d_mid_channels(8, 8)]


def test_stem_options():
    cfg = _tiny("R3D18")
    cfg.MODEL.BACKBONE.STEM_POOL = False
    cfg.MODEL.BACKBONE.STEM_KERNEL = [3, 7, 7]
    model = build_backbone(cfg).eval()
    assert model.stage_names[:2] == ["conv1", "res2"]
    assert model.blocks[0].conv.kernel_size == (3, 7, 7)
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 8, 64, 64))
    assert tuple(feats[1].shape[2:]) == (8, 32, 32)


def test_bad_config_errors_name_the_key():
    with pytest.raises(ValueError, match="MODEL.BACKBONE.NORM"):
        build_backbone(_cfg("R3D18", NORM="layernorm"))
    with pytest.raises(ValueError, match="WIDTHS"):
        build_backbone(_cfg("R3D18", WIDTHS=[64, 128]))
    with pytest.raises(ValueError, match="STEM_KERNEL"):
        build_backbone(_cfg("R2Plus1D18", STEM_KERNEL=[3, 7]))


def test_syncbatchnorm_on_cpu_is_refused_by_the_config():
    from ascnet.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="NUM_GPUS"):
        load_config(None, ["MODEL.BACKBONE.NORM", "syncbatchnorm"])


def test_registry_has_the_paper_backbones_and_suggests_names():
    from ascnet.modeling.backbone import BACKBONE_REGISTRY
    from ascnet.utils.registry import RegistryError

    assert {"R3D18", "R2Plus1D18", "S3DG"} <= set(BACKBONE_REGISTRY.names())
    with pytest.raises(RegistryError, match="R3D18"):
        build_backbone(_cfg("R3D_18"))
