"""Clip augmentation on torchvision.transforms.v2.

Clips enter as (T, C, H, W) uint8 tensors (the decoder's output) and leave as (C, T, H, W)
float32 tensors normalised with ``DATA.MEAN`` / ``DATA.STD`` after scaling to 0..1.

Training (``AUG.*``, method.md section 1): random resized crop to ``DATA.CROP_SIZE``, horizontal
flip, colour jitter (p = ``AUG.COLOR_JITTER_PROB``), grayscale (p = ``AUG.GRAYSCALE_PROB``),
Gaussian blur (p = ``AUG.BLUR_PROB``), normalisation. A (T, C, H, W) tensor is one "image batch"
for v2, so each call draws ONE set of parameters shared by all frames of the clip, and two calls
draw independently. The crop runs first and the colour ops work on the small cropped clip
(much cheaper than on the full frames).

Randomness: v2 draws from torch's global RNG. :class:`ClipTransform` runs under
``torch.random.fork_rng`` seeded from the per-sample seed, so the draws are a function of the
seed only (same sample whatever the worker, exact replay on resume) and the global RNG is left
untouched.

Evaluation: resize the short side to ``DATA.TEST_SHORT_SIDE`` (0: 8/7 of the crop), then one
centre crop or ``n`` crops spread along the long side (3: left/centre/right or top/centre/bottom).
"""
from typing import List, Optional, Sequence

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F
from fvcore.common.config import CfgNode


class VideoRandomGrayscale(torch.nn.Module):
    """Grayscale with probability ``p`` that works on videos.

    ``v2.RandomGrayscale`` silently does nothing to a ``tv_tensors.Video`` (environment.md), so
    we call the functional kernel on the plain tensor ourselves. All C=3 output channels are equal.

    Args:
        p: probability of converting the clip.
    """

    def __init__(self, p: float = 0.2):
        super().__init__()
        self.p = float(p)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) -> same shape; one draw per call."""
        if self.p <= 0 or float(torch.rand(1)) >= self.p:
            return clip
        plain = clip.as_subclass(torch.Tensor)
        return F.rgb_to_grayscale(plain, num_output_channels=plain.shape[-3])


def _blur_kernel(crop_size: int) -> int:
    k = max(int(0.1 * crop_size), 3)
    return k if k % 2 else k + 1


def create_train_transform(
    crop_size: int = 112,
    scale: Sequence[float] = (0.2, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    flip_prob: float = 0.5,
    color_jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
    color_jitter_prob: float = 0.8,
    grayscale_prob: float = 0.2,
    blur_prob: float = 0.5,
    blur_sigma: Sequence[float] = (0.1, 2.0),
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
) -> v2.Compose:
    """The training augmentation of one clip: (T, C, H, W) uint8 -> (T, C, S, S) float32.

    The crop comes first; the colour ops then see only the S x S crop. The clip is converted to
    float once, right after the crop, so jitter, grayscale and blur work in float32 instead of
    each converting uint8 <-> float on its own.
    """
    ops = [
        v2.RandomResizedCrop(crop_size, scale=tuple(scale), ratio=tuple(ratio), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if flip_prob > 0:
        ops.append(v2.RandomHorizontalFlip(flip_prob))
    if color_jitter_prob > 0 and any(c > 0 for c in color_jitter):
        b, c, s, h = color_jitter
        ops.append(v2.RandomApply([v2.ColorJitter(b, c, s, h)], p=color_jitter_prob))
    if grayscale_prob > 0:
        ops.append(VideoRandomGrayscale(grayscale_prob))
    if blur_prob > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(_blur_kernel(crop_size), sigma=tuple(blur_sigma))], p=blur_prob))
    ops.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(ops)


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


class ClipTransform:
    """Applies a v2 pipeline to one (T, C, H, W) uint8 clip under a given seed.

    Args:
        transform: a (T, C, H, W) -> (T, C, H', W') callable drawing from torch's global RNG.

    Call: ``clip_transform(clip, seed) -> (C, T, H', W')`` float32. ``seed=None`` draws from the
    current global RNG (no forking).
    """

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, clip: torch.Tensor, seed: Optional[int] = None) -> torch.Tensor:
        if seed is None:
            out = self.transform(clip)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) % (2**63))
                out = self.transform(clip)
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()


def build_train_transform(cfg: CfgNode) -> ClipTransform:
    """Training augmentation from ``AUG.*`` (``AUG.ENABLE`` False: resize + centre crop only)."""
    if not cfg.AUG.ENABLE:
        size = cfg.DATA.CROP_SIZE
        return ClipTransform(
            v2.Compose(
                [
                    v2.Resize(size, antialias=True),
                    v2.CenterCrop(size),
                    v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize(list(cfg.DATA.MEAN), list(cfg.DATA.STD)),
                ]
            )
        )
    return ClipTransform(
        create_train_transform(
            crop_size=cfg.DATA.CROP_SIZE,
            scale=cfg.AUG.RRC_SCALE,
            ratio=cfg.AUG.RRC_RATIO,
            flip_prob=cfg.AUG.FLIP_PROB,
            color_jitter=cfg.AUG.COLOR_JITTER,
            color_jitter_prob=cfg.AUG.COLOR_JITTER_PROB,
            grayscale_prob=cfg.AUG.GRAYSCALE_PROB,
            blur_prob=cfg.AUG.BLUR_PROB,
            blur_sigma=cfg.AUG.BLUR_SIGMA,
            mean=cfg.DATA.MEAN,
            std=cfg.DATA.STD,
        )
    )


class MultiCropEvalTransform:
    """Evaluation views of one clip: (T, C, H, W) uint8 -> (num_crops, C, T, S, S) float32."""

    def __init__(self, crop_size: int, short_side: int, num_crops: int, mean: Sequence[float], std: Sequence[float]):
        self.crop_size = int(crop_size)
        self.num_crops = int(num_crops)
        if self.num_crops < 1:
            raise ValueError(f"The number of spatial crops must be >= 1, got {self.num_crops}.")
        self.transform = create_eval_transform(crop_size, short_side, mean, std)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        # Crop the uint8 clip before converting: only the crops are normalised (cheaper).
        short = self.transform.transforms[0]
        resized = short(clip)
        crops = spatial_crops(resized, self.crop_size, self.num_crops)
        rest = v2.Compose(self.transform.transforms[1:])
        return torch.stack([rest(c).permute(1, 0, 2, 3) for c in crops])


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
