"""S3D-G (Xie et al. 2018): separable 3D Inception network with feature gating, 1024-d output.

pytorchvideo has no S3D, and torchvision's ``s3d`` has no gating and a fixed-size final pool
(it fails below 224 px), so the network is written here, in pytorchvideo's builder style. The
layout is the standard one (torchvision's ``S3D`` / the TF ``s3dg`` reference)::

    SepConv 7x7x7 /2, 64  -> maxpool 1x3x3 /(1,2,2) -> Conv 1x1x1, 64 -> SepConv 3x3x3, 192
    -> maxpool 1x3x3 /(1,2,2) -> Mixed_3b (256), Mixed_3c (480) -> maxpool 3x3x3 /2
    -> Mixed_4b..4f (512, 512, 512, 528, 832) -> maxpool 2x2x2 /2
    -> Mixed_5b (832), Mixed_5c (1024) -> adaptive global average pool -> (N, 1024)

Feature gating: every Inception block's output x (N, C, T, H, W) is re-weighted per channel,
``x * sigmoid(W avgpool(x) + b)`` with W a C x C matrix (the TF reference gates each branch
separately, i.e. with a block-diagonal W; the full W contains that case).

``MODEL.BACKBONE.WIDTH_MULT`` scales every channel count (tiny test variants); the output
dimension scales with it (1024 at 1.0).
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from fvcore.common.config import CfgNode
from torch import nn

from .base import BlockBackbone
from .build import BACKBONE_REGISTRY
from .norm import get_norm

_Triple = Tuple[int, int, int]

# (dim_in, branch0, branch1 mid, branch1, branch2 mid, branch2, branch3) of each Inception block
# at width 1.0 (Szegedy et al.'s Inception-v1 widths, as in S3D-G).
_INCEPTION_SPECS = {
    "Mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "Mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "Mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "Mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "Mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "Mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "Mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "Mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "Mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}


def _norm_act(norm: Optional[Callable], channels: int) -> List[nn.Module]:
    layers = [] if norm is None else [norm(num_features=channels, eps=1e-5, momentum=0.1)]
    return layers + [nn.ReLU(inplace=True)]


def create_conv_unit(
    *,
    dim_in: int,
    dim_out: int,
    kernel_size: _Triple = (1, 1, 1),
    stride: _Triple = (1, 1, 1),
    padding: _Triple = (0, 0, 0),
    norm: Optional[Callable] = nn.BatchNorm3d,
) -> nn.Sequential:
    """Conv3d (no bias) - norm - ReLU: (N, dim_in, T, H, W) -> (N, dim_out, T', H', W')."""
    return nn.Sequential(
        nn.Conv3d(dim_in, dim_out, kernel_size, stride=stride, padding=padding, bias=False),
        *_norm_act(norm, dim_out),
    )


def create_sep_conv(
    *,
    dim_in: int,
    dim_out: int,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int = 1,
    norm: Optional[Callable] = nn.BatchNorm3d,
) -> nn.Sequential:
    """Separable k x k x k conv: 1 x k x k spatial unit, then k x 1 x 1 temporal unit.

    Each conv is followed by norm and ReLU. (N, dim_in, T, H, W) -> (N, dim_out, T/s, H/s, W/s).
    """
    return nn.Sequential(
        create_conv_unit(
            dim_in=dim_in, dim_out=dim_out, kernel_size=(1, kernel_size, kernel_size),
            stride=(1, stride, stride), padding=(0, padding, padding), norm=norm,
        ),
        create_conv_unit(
            dim_in=dim_out, dim_out=dim_out, kernel_size=(kernel_size, 1, 1),
            stride=(stride, 1, 1), padding=(padding, 0, 0), norm=norm,
        ),
    )


class SelfGating(nn.Module):
    """Feature gating: ``x * sigmoid(W avgpool(x) + b)``, one weight per channel and sample.

    (N, C, T, H, W) -> (N, C, T, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class InceptionBlock(nn.Module):
    """S3D-G Inception block: four branches concatenated on channels, then gating.

    ::

        x -> [1x1x1] | [1x1x1 -> SepConv 3x3x3] | [1x1x1 -> SepConv 3x3x3]
             | [maxpool 3x3x3 /1 -> 1x1x1]  -> concat -> SelfGating (optional)

    The builder is :func:`create_inception_block`.
    """

    def __init__(self, *, branches: nn.ModuleList, gating: Optional[nn.Module]) -> None:
        super().__init__()
        self.branches = branches
        self.gating = gating
        self.out_channels = sum(_out_channels(b) for b in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, H, W) -> (N, out_channels, T, H, W)."""
        x = torch.cat([b(x) for b in self.branches], dim=1)
        return x if self.gating is None else self.gating(x)


def _out_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.Conv3d)][-1].out_channels


def create_inception_block(
    *,
    dim_in: int,
    dim_b0: int,
    dim_b1_mid: int,
    dim_b1: int,
    dim_b2_mid: int,
    dim_b2: int,
    dim_b3: int,
    norm: Optional[Callable] = nn.BatchNorm3d,
    gating: bool = True,
) -> InceptionBlock:
    """Build an :class:`InceptionBlock` with output dim_b0 + dim_b1 + dim_b2 + dim_b3 channels."""
    branches = nn.ModuleList(
        [
            create_conv_unit(dim_in=dim_in, dim_out=dim_b0, norm=norm),
            nn.Sequential(
                create_conv_unit(dim_in=dim_in, dim_out=dim_b1_mid, norm=norm),
                create_sep_conv(dim_in=dim_b1_mid, dim_out=dim_b1, norm=norm),
            ),
            nn.Sequential(
                create_conv_unit(dim_in=dim_in, dim_out=dim_b2_mid, norm=norm),
                create_sep_conv(dim_in=dim_b2_mid, dim_out=dim_b2, norm=norm),
            ),
            nn.Sequential(
                nn.MaxPool3d(kernel_size=3, stride=1, padding=1),
                create_conv_unit(dim_in=dim_in, dim_out=dim_b3, norm=norm),
            ),
        ]
    )
    total = dim_b0 + dim_b1 + dim_b2 + dim_b3
    return InceptionBlock(branches=branches, gating=SelfGating(total) if gating else None)


class S3DGNet(BlockBackbone):
    """S3D-G backbone: (N, C, T, H, W) -> (N, out_dim).

    Named blocks (``stage_names``) run in order, then a global average pool
    (:class:`BlockBackbone`); :meth:`forward_features` returns each block's output. Works for
    T >= 8 frames and H, W >= 32 at any size (adaptive final pool).
    """

    def __init__(self, *, blocks: nn.ModuleList, stage_names: Sequence[str], out_dim: int) -> None:
        super().__init__(blocks=blocks, out_dim=out_dim, stage_names=stage_names, init_weights=True)

    def check_input(self, name: str, x: torch.Tensor) -> None:
        if name == self.stage_names[0] and x.dim() != 5:
            raise ValueError(f"S3DG expects clips of shape (N, C, T, H, W), got {tuple(x.shape)}.")
        if name == "MaxPool_5a" and min(x.shape[2:]) < 2:
            raise ValueError(
                f"S3DG input too small: {tuple(x.shape[2:])} before its 2x2x2 pool. Use at least "
                "8 frames and 32x32 pixels (DATA.NUM_FRAMES, DATA.CROP_SIZE)."
            )


def create_s3dg(
    *,
    in_channels: int = 3,
    width_mult: float = 1.0,
    norm: Optional[Callable] = nn.BatchNorm3d,
    gating: bool = True,
) -> S3DGNet:
    """Build S3D-G (1024-d output at ``width_mult`` 1.0).

    Args:
        in_channels: input channels C.
        width_mult: multiplier of every channel count (rounded, at least 1).
        norm: norm builder (None: no norm).
        gating: add :class:`SelfGating` after every Inception block (S3D-G); False gives S3D.

    Returns:
        :class:`S3DGNet` mapping (N, C, T, H, W) -> (N, out_dim).
    """
    if width_mult <= 0:
        raise ValueError(f"MODEL.BACKBONE.WIDTH_MULT must be > 0, got {width_mult}.")

    def c(v: int) -> int:
        return max(1, int(round(v * width_mult)))

    blocks = [
        ("Conv3d_1a_7x7", create_sep_conv(dim_in=in_channels, dim_out=c(64), kernel_size=7, stride=2, padding=3, norm=norm)),
        ("MaxPool_2a_3x3", nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
        ("Conv3d_2b_1x1", create_conv_unit(dim_in=c(64), dim_out=c(64), norm=norm)),
        ("Conv3d_2c_3x3", create_sep_conv(dim_in=c(64), dim_out=c(192), norm=norm)),
        ("MaxPool_3a_3x3", nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
    ]
    dim = c(192)
    for name, spec in _INCEPTION_SPECS.items():
        if name == "Mixed_4b":
            blocks.append(("MaxPool_4a_3x3", nn.MaxPool3d(kernel_size=3, stride=2, padding=1)))
        if name == "Mixed_5b":
            blocks.append(("MaxPool_5a", nn.MaxPool3d(kernel_size=2, stride=2)))
        block = create_inception_block(
            dim_in=dim, dim_b0=c(spec[1]), dim_b1_mid=c(spec[2]), dim_b1=c(spec[3]),
            dim_b2_mid=c(spec[4]), dim_b2=c(spec[5]), dim_b3=c(spec[6]), norm=norm, gating=gating,
        )
        blocks.append((name, block))
        dim = block.out_channels
    return S3DGNet(blocks=nn.ModuleList([b for _, b in blocks]), stage_names=[n for n, _ in blocks], out_dim=dim)


@BACKBONE_REGISTRY.register()
def S3DG(cfg: CfgNode) -> S3DGNet:
    """S3D-G from ``cfg.MODEL.BACKBONE.{WIDTH_MULT, NORM}`` (see :func:`create_s3dg`).

    WIDTHS, DEPTHS and the STEM_* keys are ResNet keys and are not used.
    """
    return create_s3dg(
        in_channels=cfg.DATA.INPUT_CHANNEL_NUM,
        width_mult=float(cfg.MODEL.BACKBONE.WIDTH_MULT),
        norm=get_norm(cfg.MODEL.BACKBONE.NORM),
    )
