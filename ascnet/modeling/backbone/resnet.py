"""Depth-18 video ResNets of the paper: 3D R18 (Table 4) and R(2+1)D-18 (Table 3).

(Past 450 lines on purpose: the two networks share the stem, block and stage builders below,
which exist for them alone.)

pytorchvideo 0.1.5 has the residual machinery (``ResBlock``, ``ResStage``, ``create_res_block``,
``ResNetBasicStem``, ``Net``) but only bottleneck blocks and depths 50/101/152. We reuse its
machinery and add what is missing in the same builder style:

- :func:`create_basic_block` / :class:`BasicBlock`: two 3x3x3 convolutions (the "basic" block of
  depth-18 ResNets), pluggable into pytorchvideo's ``create_res_block`` as its ``bottleneck``;
- :func:`create_conv2plus1d` / :class:`Conv2Plus1d`: a (2+1)D factorised convolution with the
  mid-channel count of Tran et al. computed per convolution (:func:`r2plus1d_mid_channels`).

Neither network is torchvision's: torchvision's ``r3d_18`` has a 3x7x7 stem and no max-pool,
and its ``r2plus1d_18`` has a fixed 45-channel stem and one mid count per block.
"""
import functools
from typing import Callable, Optional, Sequence, Tuple

import torch
from fvcore.common.config import CfgNode
from pytorchvideo.models.resnet import ResStage, create_res_block
from pytorchvideo.models.stem import ResNetBasicStem
from torch import nn

from .base import BlockBackbone, GlobalAvgPool  # noqa: F401  (GlobalAvgPool: kept importable from here)
from .build import BACKBONE_REGISTRY
from .norm import get_norm

_Triple = Tuple[int, int, int]


# ------------------------------------------------------------------------------------------------
# Blocks
# ------------------------------------------------------------------------------------------------
def r2plus1d_mid_channels(in_channels: int, out_channels: int, t: int = 3, d: int = 3) -> int:
    """Mid channels M of a (2+1)D factorisation of a t x d x d conv (Tran et al. 2018).

    ``M = floor(t * d^2 * N_in * N_out / (d^2 * N_in + t * N_out))``, which keeps the parameter
    count of the factorised pair equal to the full 3D convolution's.

    Args:
        in_channels: N_in of this convolution.
        out_channels: N_out of this convolution.
        t: temporal kernel size.
        d: spatial kernel size.

    Returns:
        M (e.g. 83 for the 3x7x7 stem 3 -> 64, 144 for 64 -> 64, 230 for 64 -> 128).
    """
    return (t * d * d * in_channels * out_channels) // (d * d * in_channels + t * out_channels)


class Conv2Plus1d(nn.Module):
    """(2+1)D convolution: spatial 1 x d x d conv, norm, activation, temporal t x 1 x 1 conv.

    ::

        (N, C_in, T, H, W) -> spatial conv (1, d, d), stride (1, s_h, s_w) -> (N, M, T, H', W')
                           -> norm -> activation
                           -> temporal conv (t, 1, 1), stride (s_t, 1, 1) -> (N, C_out, T', H', W')

    The builder is :func:`create_conv2plus1d`.
    """

    def __init__(
        self,
        *,
        conv_s: nn.Module,
        norm_s: Optional[nn.Module],
        act_s: Optional[nn.Module],
        conv_t: nn.Module,
    ) -> None:
        super().__init__()
        self.conv_s = conv_s
        self.norm_s = norm_s
        self.act_s = act_s
        self.conv_t = conv_t

    @property
    def mid_channels(self) -> int:
        """M, the channel count between the spatial and the temporal convolution."""
        return self.conv_s.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_s(x)
        if self.norm_s is not None:
            x = self.norm_s(x)
        if self.act_s is not None:
            x = self.act_s(x)
        return self.conv_t(x)


def create_conv2plus1d(
    *,
    in_channels: int,
    out_channels: int,
    kernel_size: _Triple = (3, 3, 3),
    stride: _Triple = (1, 1, 1),
    padding: _Triple = (1, 1, 1),
    bias: bool = False,
    mid_channels: Optional[int] = None,
    norm: Optional[Callable] = nn.BatchNorm3d,
    norm_eps: float = 1e-5,
    norm_momentum: float = 0.1,
    activation: Optional[Callable] = nn.ReLU,
) -> Conv2Plus1d:
    """Build a :class:`Conv2Plus1d` replacing a ``kernel_size`` 3D convolution.

    Keyword-compatible with ``nn.Conv3d(in_channels=, out_channels=, kernel_size=, stride=,
    padding=, bias=)`` so it can stand in for it (``functools.partial`` the norm/activation).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: (t, d, d) of the 3D convolution being factorised.
        stride: (s_t, s_h, s_w); the spatial conv takes (1, s_h, s_w), the temporal (s_t, 1, 1).
        padding: (p_t, p_h, p_w), split the same way.
        bias: bias of both convolutions.
        mid_channels: M; None computes it from this conv's own channels with
            :func:`r2plus1d_mid_channels`.
        norm: norm builder between the two convs (None: no norm).
        norm_eps: norm epsilon.
        norm_momentum: norm momentum.
        activation: activation builder between the two convs (None: no activation).

    Returns:
        Module mapping (N, in_channels, T, H, W) -> (N, out_channels, T', H', W').
    """
    t, dh, dw = kernel_size
    if mid_channels is None:
        if dh != dw:
            raise ValueError(f"(2+1)D factorisation needs a square spatial kernel, got {kernel_size}.")
        mid_channels = r2plus1d_mid_channels(in_channels, out_channels, t=t, d=dh)
    return Conv2Plus1d(
        conv_s=nn.Conv3d(
            in_channels,
            mid_channels,
            kernel_size=(1, dh, dw),
            stride=(1, stride[1], stride[2]),
            padding=(0, padding[1], padding[2]),
            bias=bias,
        ),
        norm_s=None if norm is None else norm(num_features=mid_channels, eps=norm_eps, momentum=norm_momentum),
        act_s=None if activation is None else activation(),
        conv_t=nn.Conv3d(
            mid_channels,
            out_channels,
            kernel_size=(t, 1, 1),
            stride=(stride[0], 1, 1),
            padding=(padding[0], 0, 0),
            bias=bias,
        ),
    )


class BasicBlock(nn.Module):
    """Residual branch of a basic block: conv_a - norm - act - conv_b - norm.

    ::

        (N, C_in, T, H, W) -> conv_a (3x3x3, stride s) -> norm_a -> act_a
                           -> conv_b (3x3x3) -> norm_b -> (N, C_out, T/s, H/s, W/s)

    The sum with the shortcut and the final ReLU are done by pytorchvideo's ``ResBlock``.
    The builder is :func:`create_basic_block`.
    """

    def __init__(
        self,
        *,
        conv_a: nn.Module,
        norm_a: Optional[nn.Module],
        act_a: Optional[nn.Module],
        conv_b: nn.Module,
        norm_b: Optional[nn.Module],
    ) -> None:
        super().__init__()
        self.conv_a = conv_a
        self.norm_a = norm_a
        self.act_a = act_a
        self.conv_b = conv_b
        self.norm_b = norm_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_a(x)
        if self.norm_a is not None:
            x = self.norm_a(x)
        if self.act_a is not None:
            x = self.act_a(x)
        x = self.conv_b(x)
        if self.norm_b is not None:
            x = self.norm_b(x)
        return x


def create_basic_block(
    *,
    dim_in: int,
    dim_inner: int,
    dim_out: int,
    conv_a_kernel_size: _Triple = (3, 3, 3),
    conv_a_stride: _Triple = (1, 1, 1),
    conv_a_padding: _Triple = (1, 1, 1),
    conv_a: Callable = nn.Conv3d,
    conv_b_kernel_size: _Triple = (3, 3, 3),
    conv_b_stride: _Triple = (1, 1, 1),
    conv_b_padding: _Triple = (1, 1, 1),
    conv_b: Callable = nn.Conv3d,
    norm: Optional[Callable] = nn.BatchNorm3d,
    norm_eps: float = 1e-5,
    norm_momentum: float = 0.1,
    activation: Optional[Callable] = nn.ReLU,
    **unused,
) -> BasicBlock:
    """Build the residual branch of a basic block (two 3x3x3 convs).

    Has the keyword signature pytorchvideo's ``create_res_block`` gives its ``bottleneck``
    builder; ``dim_inner`` and the bottleneck-only arguments (``conv_c``, groups, dilation) are
    ignored: a basic block has no inner width.

    Args:
        dim_in: input channels.
        dim_inner: unused (kept for pytorchvideo's builder signature).
        dim_out: output channels of both convolutions.
        conv_a_kernel_size, conv_a_stride, conv_a_padding: first convolution (strided).
        conv_a: conv builder (``nn.Conv3d`` or a partial of :func:`create_conv2plus1d`).
        conv_b_kernel_size, conv_b_stride, conv_b_padding, conv_b: second convolution.
        norm, norm_eps, norm_momentum: norm after each convolution (None: no norm).
        activation: activation after the first norm.

    Returns:
        Module mapping (N, dim_in, T, H, W) -> (N, dim_out, T', H', W').
    """
    del dim_inner, unused

    def _norm(c: int) -> Optional[nn.Module]:
        return None if norm is None else norm(num_features=c, eps=norm_eps, momentum=norm_momentum)

    return BasicBlock(
        conv_a=conv_a(
            in_channels=dim_in,
            out_channels=dim_out,
            kernel_size=conv_a_kernel_size,
            stride=conv_a_stride,
            padding=conv_a_padding,
            bias=False,
        ),
        norm_a=_norm(dim_out),
        act_a=None if activation is None else activation(),
        conv_b=conv_b(
            in_channels=dim_out,
            out_channels=dim_out,
            kernel_size=conv_b_kernel_size,
            stride=conv_b_stride,
            padding=conv_b_padding,
            bias=False,
        ),
        norm_b=_norm(dim_out),
    )


def create_basic_res_stage(
    *,
    depth: int,
    dim_in: int,
    dim_out: int,
    stride: _Triple = (1, 1, 1),
    conv: Callable = nn.Conv3d,
    norm: Optional[Callable] = nn.BatchNorm3d,
    activation: Optional[Callable] = nn.ReLU,
) -> ResStage:
    """A stage of ``depth`` basic residual blocks (pytorchvideo ``ResStage`` of ``ResBlock``).

    The first block takes the stride and, when the stride or the width changes, a 1x1x1 conv +
    norm shortcut with the same stride; the others keep the size.

    Args:
        depth: blocks in the stage.
        dim_in: input channels.
        dim_out: output channels.
        stride: (s_t, s_h, s_w) of the first block.
        conv: 3x3x3 conv builder (``nn.Conv3d`` or a (2+1)D partial).
        norm: norm builder (None: no norm).
        activation: activation builder.

    Returns:
        Module mapping (N, dim_in, T, H, W) -> (N, dim_out, T/s_t, H/s_h, W/s_w).
    """
    if depth < 1:
        raise ValueError(f"MODEL.BACKBONE.DEPTHS entries must be >= 1, got {depth}.")
    blocks = [
        create_res_block(
            dim_in=dim_in if i == 0 else dim_out,
            dim_inner=dim_out,
            dim_out=dim_out,
            bottleneck=create_basic_block,
            conv_a_kernel_size=(3, 3, 3),
            conv_a_stride=tuple(stride) if i == 0 else (1, 1, 1),
            conv_a_padding=(1, 1, 1),
            conv_a=conv,
            conv_b_kernel_size=(3, 3, 3),
            conv_b_stride=(1, 1, 1),
            conv_b_padding=(1, 1, 1),
            conv_b=conv,
            conv_skip=nn.Conv3d,
            norm=norm,
            activation_bottleneck=activation,
            activation_block=activation,
        )
        for i in range(depth)
    ]
    return ResStage(res_blocks=nn.ModuleList(blocks))


# ------------------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------------------
class VideoResNet(BlockBackbone):
    """Named blocks followed by a global average pool (:class:`BlockBackbone`).

    ``forward``: (N, C, T, H, W) -> (N, out_dim). :meth:`forward_features` returns every
    block's output (the rows of the paper's architecture tables), named by ``stage_names``.
    Weights are initialised by pytorchvideo's ResNet init (MSRA convs, BN weight 1, bias 0).
    """

    def __init__(self, *, blocks: nn.ModuleList, stage_names: Sequence[str], out_dim: int) -> None:
        super().__init__(blocks=blocks, out_dim=out_dim, stage_names=stage_names, init_weights=True)


def _check_stage_lists(widths: Sequence[int], depths: Sequence[int]) -> None:
    if len(widths) != 4 or len(depths) != 4:
        raise ValueError(
            f"MODEL.BACKBONE.WIDTHS ({list(widths)}) and DEPTHS ({list(depths)}) need 4 entries each "
            "(res2..res5), e.g. WIDTHS [64, 128, 256, 512] DEPTHS [2, 2, 2, 2]."
        )
    if any(int(w) < 1 for w in widths):
        raise ValueError(f"MODEL.BACKBONE.WIDTHS must be positive, got {list(widths)}.")


def create_r3d18(
    *,
    in_channels: int = 3,
    stem_width: int = 64,
    stem_kernel: _Triple = (7, 7, 7),
    stem_stride: _Triple = (1, 2, 2),
    stem_pool: bool = True,
    widths: Sequence[int] = (64, 128, 256, 512),
    depths: Sequence[int] = (2, 2, 2, 2),
    norm: Optional[Callable] = nn.BatchNorm3d,
    activation: Callable = nn.ReLU,
) -> VideoResNet:
    """3D ResNet-18 of Hara et al. as in the supplementary's Table 4.

    For a (1, 3, 16, 112, 112) input the blocks give (T x H x W): conv1 16x56x56, pool1
    8x28x28, res2 8x28x28, res3 4x14x14, res4 2x7x7, res5 1x4x4; then a global average pool
    gives (1, 512).

    Args:
        in_channels: input channels C.
        stem_width: channels of the stem conv (64).
        stem_kernel: stem conv kernel (7, 7, 7), padded by kernel // 2.
        stem_stride: stem conv stride (1, 2, 2).
        stem_pool: 3x3x3 max-pool, stride 2, padding 1 after the stem.
        widths: output channels of res2..res5.
        depths: basic blocks per stage.
        norm: norm builder (None: no norm).
        activation: activation builder.

    Returns:
        :class:`VideoResNet` mapping (N, C, T, H, W) -> (N, widths[-1]).
    """
    _check_stage_lists(widths, depths)
    stem = ResNetBasicStem(
        conv=nn.Conv3d(
            in_channels,
            stem_width,
            kernel_size=tuple(stem_kernel),
            stride=tuple(stem_stride),
            padding=tuple(k // 2 for k in stem_kernel),
            bias=False,
        ),
        norm=None if norm is None else norm(num_features=stem_width, eps=1e-5, momentum=0.1),
        activation=activation(),
        pool=None,
    )
    blocks, names = [stem], ["conv1"]
    if stem_pool:
        blocks.append(nn.MaxPool3d(kernel_size=3, stride=2, padding=1))
        names.append("pool1")
    dim_in = stem_width
    for i, (w, d) in enumerate(zip(widths, depths)):
        stride = (1, 1, 1) if i == 0 else (2, 2, 2)
        blocks.append(
            create_basic_res_stage(
                depth=int(d), dim_in=dim_in, dim_out=int(w), stride=stride,
                conv=nn.Conv3d, norm=norm, activation=activation,
            )
        )
        names.append(f"res{i + 2}")
        dim_in = int(w)
    return VideoResNet(blocks=nn.ModuleList(blocks), stage_names=names, out_dim=dim_in)


def create_r2plus1d18(
    *,
    in_channels: int = 3,
    stem_width: int = 64,
    stem_kernel: _Triple = (3, 7, 7),
    stem_stride: _Triple = (1, 2, 2),
    widths: Sequence[int] = (64, 128, 256, 512),
    depths: Sequence[int] = (2, 2, 2, 2),
    norm: Optional[Callable] = nn.BatchNorm3d,
    activation: Callable = nn.ReLU,
) -> VideoResNet:
    """R(2+1)D-18 of Tran et al. as in the supplementary's Table 3.

    Every 3x3x3 conv is a :class:`Conv2Plus1d` whose mid channels come from its own input and
    output channels; the stem is a factorised 3x7x7 conv (3 -> 83 -> 64 at the defaults); no
    max-pool; res3..res5 halve T, H and W. For (1, 3, 16, 112, 112): conv1 16x56x56, res2
    16x56x56, res3 8x28x28, res4 4x14x14, res5 2x7x7, then (1, 512).

    Args:
        in_channels: input channels C.
        stem_width: output channels of the stem (64).
        stem_kernel: (t, d, d) of the factorised stem conv (3, 7, 7).
        stem_stride: stem stride (1, 2, 2).
        widths: output channels of res2..res5.
        depths: basic blocks per stage.
        norm: norm builder (None: no norm), also used inside each factorised conv.
        activation: activation builder, also used inside each factorised conv.

    Returns:
        :class:`VideoResNet` mapping (N, C, T, H, W) -> (N, widths[-1]).
    """
    _check_stage_lists(widths, depths)
    conv = functools.partial(create_conv2plus1d, norm=norm, activation=activation)
    stem = ResNetBasicStem(
        conv=conv(
            in_channels=in_channels,
            out_channels=stem_width,
            kernel_size=tuple(stem_kernel),
            stride=tuple(stem_stride),
            padding=tuple(k // 2 for k in stem_kernel),
            bias=False,
        ),
        norm=None if norm is None else norm(num_features=stem_width, eps=1e-5, momentum=0.1),
        activation=activation(),
        pool=None,
    )
    blocks, names = [stem], ["conv1"]
    dim_in = stem_width
    for i, (w, d) in enumerate(zip(widths, depths)):
        stride = (1, 1, 1) if i == 0 else (2, 2, 2)
        blocks.append(
            create_basic_res_stage(
                depth=int(d), dim_in=dim_in, dim_out=int(w), stride=stride,
                conv=conv, norm=norm, activation=activation,
            )
        )
        names.append(f"res{i + 2}")
        dim_in = int(w)
    return VideoResNet(blocks=nn.ModuleList(blocks), stage_names=names, out_dim=dim_in)


# ------------------------------------------------------------------------------------------------
# Registered config builders
# ------------------------------------------------------------------------------------------------
def _stem_kernel(cfg: CfgNode, default: _Triple) -> _Triple:
    k = tuple(int(v) for v in cfg.MODEL.BACKBONE.STEM_KERNEL) or default
    if len(k) != 3 or any(v < 1 for v in k):
        raise ValueError(
            f"MODEL.BACKBONE.STEM_KERNEL must be [T, H, W] positive ints (or [] for the paper's), got {list(k)}."
        )
    return k


def _stem_stride(cfg: CfgNode) -> _Triple:
    s = tuple(int(v) for v in cfg.MODEL.BACKBONE.STEM_STRIDE)
    if len(s) != 3 or any(v < 1 for v in s):
        raise ValueError(f"MODEL.BACKBONE.STEM_STRIDE must be [T, H, W] positive ints, got {list(s)}.")
    return s


@BACKBONE_REGISTRY.register()
def R3D18(cfg: CfgNode) -> VideoResNet:
    """3D R18 (Table 4) from ``cfg.MODEL.BACKBONE`` (see :func:`create_r3d18`)."""
    b = cfg.MODEL.BACKBONE
    return create_r3d18(
        in_channels=cfg.DATA.INPUT_CHANNEL_NUM,
        stem_width=b.STEM_WIDTH,
        stem_kernel=_stem_kernel(cfg, (7, 7, 7)),
        stem_stride=_stem_stride(cfg),
        stem_pool=b.STEM_POOL,
        widths=b.WIDTHS,
        depths=b.DEPTHS,
        norm=get_norm(b.NORM),
    )


@BACKBONE_REGISTRY.register()
def R2Plus1D18(cfg: CfgNode) -> VideoResNet:
    """R(2+1)D-18 (Table 3) from ``cfg.MODEL.BACKBONE`` (see :func:`create_r2plus1d18`).

    ``STEM_POOL`` is ignored: the network has no max-pool.
    """
    b = cfg.MODEL.BACKBONE
    return create_r2plus1d18(
        in_channels=cfg.DATA.INPUT_CHANNEL_NUM,
        stem_width=b.STEM_WIDTH,
        stem_kernel=_stem_kernel(cfg, (3, 7, 7)),
        stem_stride=_stem_stride(cfg),
        widths=b.WIDTHS,
        depths=b.DEPTHS,
        norm=get_norm(b.NORM),
    )
