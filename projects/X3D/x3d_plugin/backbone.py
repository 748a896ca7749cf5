"""X3D backbone for ascnet: pytorchvideo's ``create_x3d`` without its classification head."""
from fvcore.common.config import CfgNode
from pytorchvideo.models.x3d import create_x3d
from torch import nn

from ascnet.modeling.backbone import BACKBONE_REGISTRY
from ascnet.modeling.backbone.base import BlockBackbone
from ascnet.modeling.backbone.norm import get_norm


class X3DBackbone(BlockBackbone):
    """X3D stem + res2..res5 (+ conv5), then ascnet's global average pool (:class:`BlockBackbone`).

    ``forward``: (N, C, T, H, W) -> (N, out_dim). The pool averages whatever size comes out, so
    any clip length and crop size work (pytorchvideo's head uses a fixed-size pool).
    :meth:`forward_features` returns each block's output. The blocks come initialised by
    pytorchvideo's ``create_x3d``.
    """


def create_x3d_backbone(
    *,
    in_channels: int = 3,
    num_frames: int = 4,
    crop_size: int = 160,
    width_factor: float = 2.0,
    depth_factor: float = 2.2,
    bottleneck_factor: float = 2.25,
    stem_dim_in: int = 12,
    se_ratio: float = 0.0625,
    conv5: bool = True,
    norm=nn.BatchNorm3d,
) -> X3DBackbone:
    """Build X3D (defaults: X3D-XS) as a backbone.

    Args:
        in_channels: input channels C.
        num_frames, crop_size: the clip size (only checked against X3D's strides: >= 1 frame,
            >= 32 pixels).
        width_factor, depth_factor, bottleneck_factor, stem_dim_in, se_ratio: X3D's
            expansion parameters (see ``pytorchvideo.models.x3d.create_x3d``).
        conv5: keep X3D's conv5 (1x1x1 conv + norm + ReLU) from the head.
        norm: norm builder.

    Returns:
        :class:`X3DBackbone` mapping (N, C, T, H, W) -> (N, out_dim).
    """
    if crop_size < 32:
        raise ValueError(f"X3D needs DATA.CROP_SIZE >= 32 (its total stride), got {crop_size}.")
    net = create_x3d(
        input_channel=in_channels,
        input_clip_length=max(1, int(num_frames)),
        input_crop_size=int(crop_size),
        model_num_class=1,  # the head is dropped below
        width_factor=width_factor,
        depth_factor=depth_factor,
        bottleneck_factor=bottleneck_factor,
        stem_dim_in=stem_dim_in,
        se_ratio=se_ratio,
        norm=norm,
    )
    blocks = list(net.blocks[:-1])
    out_dim = blocks[-1].res_blocks[-1].branch2.conv_c.out_channels
    if conv5:
        pool = net.blocks[-1].pool  # ProjectedPool: pre_conv/pre_norm/pre_act is X3D's conv5
        layers = [m for m in (pool.pre_conv, pool.pre_norm, pool.pre_act) if m is not None]
        blocks.append(nn.Sequential(*layers))
        out_dim = pool.pre_conv.out_channels
    return X3DBackbone(blocks=nn.ModuleList(blocks), out_dim=out_dim)


@BACKBONE_REGISTRY.register()
def X3D(cfg: CfgNode) -> X3DBackbone:
    """X3D from ``cfg.MODEL.X3D.*`` (added by this plugin) and ``MODEL.BACKBONE.NORM``."""
    if "X3D" not in cfg.MODEL:
        raise KeyError(
            "MODEL.X3D keys are missing: list 'x3d_plugin' in PLUGINS (its add_config adds them) "
            "or call x3d_plugin.add_config(cfg) before building."
        )
    x = cfg.MODEL.X3D
    return create_x3d_backbone(
        in_channels=cfg.DATA.INPUT_CHANNEL_NUM,
        num_frames=cfg.DATA.NUM_FRAMES,
        crop_size=cfg.DATA.CROP_SIZE,
        width_factor=x.WIDTH_FACTOR,
        depth_factor=x.DEPTH_FACTOR,
        bottleneck_factor=x.BOTTLENECK_FACTOR,
        stem_dim_in=x.STEM_DIM_IN,
        se_ratio=x.SE_RATIO,
        conv5=x.CONV5,
        norm=get_norm(cfg.MODEL.BACKBONE.NORM),
    )
