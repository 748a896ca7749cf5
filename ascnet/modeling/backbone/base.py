"""The base of the video backbones: named blocks run in order, then a global average pool.

The built-in networks (:class:`~ascnet.modeling.backbone.resnet.VideoResNet`,
:class:`~ascnet.modeling.backbone.s3dg.S3DGNet`) and plugins (``projects/X3D``) are this
class with their own blocks, so the block loop, :meth:`BlockBackbone.forward_features` and the
pooling exist once.
"""
from typing import List, Optional, Sequence

import torch
from pytorchvideo.models.weight_init import init_net_weights
from torch import nn

__all__ = ["BlockBackbone", "GlobalAvgPool"]


class GlobalAvgPool(nn.Module):
    """(N, C, T, H, W) -> (N, C): average over time and space (adaptive: any input size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))


class BlockBackbone(nn.Module):
    """Blocks run in order, then :class:`GlobalAvgPool`: (N, C, T, H, W) -> (N, out_dim).

    Args:
        blocks: the network's blocks (state-dict keys ``blocks.<i>.*``).
        out_dim: the channels of the last block's output (D).
        stage_names: one name per block (default ``block0``, ``block1``, ...).
        init_weights: initialise every layer with pytorchvideo's ``init_net_weights`` (MSRA
            convs, BN weight 1, bias 0), as pytorchvideo's ``Net`` does.
    """

    def __init__(
        self, *, blocks: nn.ModuleList, out_dim: int, stage_names: Optional[Sequence[str]] = None,
        init_weights: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = blocks
        self.stage_names: List[str] = list(stage_names) if stage_names is not None else [f"block{i}" for i in range(len(blocks))]
        if len(self.stage_names) != len(blocks):
            raise ValueError("One stage name per block is needed.")
        self.pool = GlobalAvgPool()
        self.out_dim = int(out_dim)
        if init_weights:
            init_net_weights(self)

    def check_input(self, name: str, x: torch.Tensor) -> None:
        """Called with each block's input before the block runs; raise on an input the network
        cannot take (default: nothing)."""

    def forward_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return the output of every block, (N, C_i, T_i, H_i, W_i), in order."""
        feats = []
        for name, block in zip(self.stage_names, self.blocks):
            self.check_input(name, x)
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, out_dim)."""
        for name, block in zip(self.stage_names, self.blocks):
            self.check_input(name, x)
            x = block(x)
        return self.pool(x)
