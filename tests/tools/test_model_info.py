"""tools/model_info.py: parameter counts and fvcore FLOPs of the configured backbone."""
import importlib.util
import os

from torch import nn

from ascnet.config import get_cfg
from ascnet.modeling import build_backbone


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location("model_info", os.path.join(repo_root, "tools", "model_info.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flops_of_a_conv_are_its_multiply_adds(repo_root):
    tool = _tool(repo_root)

    class OneConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(3, 4, 3, padding=1, bias=False)

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3, 4))

    # output 4 x 2 x 4 x 4 positions, each 3 * 27 multiply-adds
    assert tool.backbone_flops(OneConv(), num_frames=2, crop_size=4) == 4 * 2 * 4 * 4 * 3 * 27


def test_model_info_counts_tiny_backbone(repo_root, capsys):
    tool = _tool(repo_root)
    opts = ["MODEL.BACKBONE.WIDTHS", "[4, 8, 8, 16]", "MODEL.BACKBONE.STEM_WIDTH", "4",
            "DATA.NUM_FRAMES", "8", "DATA.CROP_SIZE", "64"]
    assert tool.main(opts) == 0
    text = capsys.readouterr().out
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.WIDTHS = [4, 8, 8, 16]
    cfg.MODEL.BACKBONE.STEM_WIDTH = 4
    cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE = 8, 64
    backbone = build_backbone(cfg)
    n = sum(p.numel() for p in backbone.parameters())
    assert f"backbone params {n:,}" in text
    assert "1 x 3 x 8 x 64 x 64" in text and "feature dim 16" in text
    info = tool.model_info(cfg)
    # The stem conv alone: 4 x (8 x 32 x 32) outputs x 3 x 7^3 multiply-adds; the total is more.
    assert info["backbone_gflops"] * 1e9 > 4 * 8 * 32 * 32 * 3 * 343
    assert info["backbone_params"] == n and info["out_dim"] == 16
    assert ("model_params" in info) != ("model_error" in info)
    if "model_params" in info:  # ASCNet: online = backbone + 2 projections + 2 predictors
        assert info["model_parts"]["online"] > n and info["model_trainable"] == info["model_parts"]["online"]
    backbone.train()
    assert tool.backbone_flops(backbone, 8, 64) == int(info["backbone_gflops"] * 1e9 + 0.5)
    assert backbone.training  # the count runs in eval mode and restores the mode
