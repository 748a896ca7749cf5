"""Evaluation views on torchvision.transforms.v2, and two kernels of the training augmentation.

The training augmentation itself is :mod:`ascnet.data.batch_augment` (parameters drawn per
clip, ops applied per batch); :func:`adjust_hue` and :func:`blur_kernel_size` are shared with
it. Its per-clip torchvision reference, which the equality tests compare it with, lives in
``tests/data/reference_augment.py``.

Evaluation: resize the short side to ``DATA.TEST_SHORT_SIDE`` (0: 8/7 of the crop), then one
centre crop or ``n`` crops spread along the long side (3: left/centre/right or top/centre/bottom).
"""
from typing import List, Optional, Sequence

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F
from fvcore.common.config import CfgNode


def adjust_hue(clip: torch.Tensor, hue_factor, dim: int = -3) -> torch.Tensor:
    """Exact HSV hue rotation of a float clip in [0, 1]: (..., 3, H, W) -> same shape.

    Same result as ``torchvision.transforms.v2.functional.adjust_hue`` (tested to 1e-5), 3-6x
    faster on a 16 x 112 x 112 clip: torchvision converts to HSV and back through many
    intermediate tensors (the most expensive op of the augmentation); here value V = max and
    chroma C = max - min are kept, only the hue angle is computed and shifted, and RGB comes
    back from the closed form ``V - C * clamp(min(k, 4 - k), 0, 1)``.

    Args:
        clip: float tensor in [0, 1] with its 3 channels at dim ``dim``.
        hue_factor: shift in [-0.5, 0.5] (fraction of a full turn): a float, or a tensor that
            broadcasts against the clip with dim ``dim`` removed (per-clip shifts of a batch).
        dim: the channel dimension (-3 for (T, C, H, W); 1 for (B, C, T, H, W) batches).
    """
    r, g, b = clip.unbind(dim=dim)
    maxc = clip.amax(dim=dim)
    chroma = maxc - clip.amin(dim=dim)
    inv = 1.0 / torch.where(chroma > 0, chroma, 1.0)
    max_r = maxc == r
    max_g = (maxc == g) & ~max_r
    # Hue in sixths of a turn: the channel holding the max decides the sector.
    h = torch.where(max_r, (g - b) * inv, torch.where(max_g, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    h = h.add_(6.0 * hue_factor + 6.0)  # > 0 before the modulo
    out = torch.empty_like(clip)
    for c, n in enumerate((5.0, 3.0, 1.0)):  # R, G, B
        k = torch.remainder(h + n, 6.0)
        torch.minimum(k, 4.0 - k, out=k)
        k.clamp_(0.0, 1.0)
        torch.sub(maxc, chroma * k, out=out.select(dim, c))
    return out


def blur_kernel_size(crop_size: int) -> int:
    """Odd Gaussian-blur kernel size for ``crop_size`` crops: 10% of the crop, at least 3."""
    k = max(int(0.1 * crop_size), 3)
    return k if k % 2 else k + 1


def create_eval_transform(
    crop_size: int = 112,
    short_side: int = 0,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
) -> v2.Compose:
    """Resize the short side (0: ``crop_size * 8 / 7``), convert and normalise; no crop.

    Crops are taken afterwards by :func:`spatial_crops`.
    """
    short = int(short_side) if short_side > 0 else int(round(crop_size * 8 / 7))
    return v2.Compose(
        [v2.Resize(short, antialias=True), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    )


def spatial_crops(clip: torch.Tensor, crop_size: int, num_crops: int) -> List[torch.Tensor]:
    """``num_crops`` square crops of a (..., H, W) clip, deterministic.

    One crop is centred; ``n > 1`` crops are evenly spaced along the longer side from one edge
    to the other (3 = left/centre/right for landscape frames), centred on the shorter side.
    """
    h, w = clip.shape[-2:]
    if h < crop_size or w < crop_size:
        raise ValueError(f"Cannot take {crop_size}px crops from {h}x{w} frames; resize first.")
    if num_crops == 1:
        return [F.center_crop(clip, [crop_size, crop_size])]
    out = []
    long_room = (w if w >= h else h) - crop_size
    short_off = ((h if w >= h else w) - crop_size) // 2
    for i in range(num_crops):
        off = int(round(i * long_room / (num_crops - 1)))
        top, left = (short_off, off) if w >= h else (off, short_off)
        out.append(clip[..., top : top + crop_size, left : left + crop_size])
    return out


class MultiCropEvalTransform:
    """Evaluation views of one clip: (T, C, H, W) uint8 -> (num_crops, C, T, S, S) uint8.

    Conversion and normalisation happen where the views are used
    (:func:`ascnet.data.batch_augment.normalize_clips`: on the evaluation device).
    """

    def __init__(self, crop_size: int, short_side: int, num_crops: int, mean: Sequence[float], std: Sequence[float]):
        self.crop_size = int(crop_size)
        self.num_crops = int(num_crops)
        if self.num_crops < 1:
            raise ValueError(f"The number of spatial crops must be >= 1, got {self.num_crops}.")
        self.transform = create_eval_transform(crop_size, short_side, mean, std)
        # Resize only; the crops stay uint8 (``convert`` is the float conversion + normalisation
        # that the evaluation applies on its device).
        self.resize = self.transform.transforms[0]
        self.convert = v2.Compose(self.transform.transforms[1:])

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        crops = spatial_crops(self.resize(clip), self.crop_size, self.num_crops)
        return torch.stack([c.permute(1, 0, 2, 3) for c in crops])


def build_eval_transform(cfg: CfgNode, num_crops: Optional[int] = None) -> MultiCropEvalTransform:
    """Evaluation transform from ``DATA.TEST_CROP_SIZE`` / ``DATA.TEST_SHORT_SIDE``.

    Args:
        num_crops: spatial crops per clip (default ``TEST.NUM_SPATIAL_CROPS``).
    """
    return MultiCropEvalTransform(
        crop_size=cfg.DATA.TEST_CROP_SIZE,
        short_side=cfg.DATA.TEST_SHORT_SIDE,
        num_crops=cfg.TEST.NUM_SPATIAL_CROPS if num_crops is None else num_crops,
        mean=cfg.DATA.MEAN,
        std=cfg.DATA.STD,
    )
