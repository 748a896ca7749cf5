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

    ``v2.RandomGrayscale`` silently does nothing to a ``tv_tensors.Video`` (torchvision 0.2x, even at p=1), so
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


class VideoColorJitter(torch.nn.Module):
    """``v2.ColorJitter`` for float clips with the fast exact hue (:func:`adjust_hue`).

    Same parameter distribution as torchvision: factors uniform in [1 - x, 1 + x] (hue in
    [-h, h]), applied in a random order; one draw per call (per clip).
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1):
        super().__init__()
        if not 0 <= hue <= 0.5:
            raise ValueError(f"AUG.COLOR_JITTER hue must be in [0, 0.5], got {hue}.")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    @staticmethod
    def _factor(x: float, centre: float = 1.0) -> float:
        return float(torch.empty(1).uniform_(max(centre - x, 0.0) if centre else -x, centre + x))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        for i in torch.randperm(4).tolist():
            if i == 0 and self.brightness > 0:
                clip = F.adjust_brightness(clip, self._factor(self.brightness))
            elif i == 1 and self.contrast > 0:
                clip = F.adjust_contrast(clip, self._factor(self.contrast))
            elif i == 2 and self.saturation > 0:
                clip = F.adjust_saturation(clip, self._factor(self.saturation))
            elif i == 3 and self.hue > 0:
                clip = adjust_hue(clip, self._factor(self.hue, centre=0.0))
        return clip


def _reflect_blur_matrix(n: int, k1: torch.Tensor) -> torch.Tensor:
    """(n, n) matrix M with ``M @ x`` = 1-D convolution of x with k1 under reflect padding."""
    k = k1.numel()
    i = torch.arange(n).view(-1, 1)
    src = (i + torch.arange(k).view(1, -1) - k // 2).abs()
    src = torch.where(src >= n, 2 * (n - 1) - src, src)
    return torch.zeros(n, n, dtype=k1.dtype).scatter_add_(1, src, k1.expand(n, k).contiguous())


class SeparableGaussianBlur(torch.nn.Module):
    """Gaussian blur with a random sigma, as two matrix products (reflect padding).

    Same output as ``v2.GaussianBlur`` (tested), several times faster: torchvision convolves
    every plane with the full k x k kernel (121 taps for k = 11, and single-threaded conv2d is
    slow on small planes); the blur is separable and, with reflect padding folded in, each 1-D
    pass is a product with an (n, n) banded matrix, which BLAS runs at full speed.

    Args:
        kernel_size: odd kernel size.
        sigma: (min, max) range of the standard deviation, one draw per call.
    """

    def __init__(self, kernel_size: int, sigma: Sequence[float] = (0.1, 2.0)):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"The blur kernel size must be odd, got {kernel_size}.")
        self.kernel_size = int(kernel_size)
        self.sigma = (float(sigma[0]), float(sigma[1]))

    def blur(self, clip: torch.Tensor, sigma: float) -> torch.Tensor:
        """Blur (..., H, W) float ``clip`` with a fixed ``sigma``."""
        h, w = clip.shape[-2:]
        half = (self.kernel_size - 1) * 0.5
        x = torch.linspace(-half, half, steps=self.kernel_size, dtype=clip.dtype)
        k1 = torch.softmax(-0.5 * (x / sigma).pow(2), dim=0)  # normalised 1-D gaussian
        mw = _reflect_blur_matrix(w, k1).T.contiguous()
        out = (clip.reshape(-1, w) @ mw).view(-1, h, w)
        return torch.matmul(_reflect_blur_matrix(h, k1), out).view(clip.shape)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.blur(clip, float(torch.empty(1).uniform_(self.sigma[0], self.sigma[1])))


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

    This is the per-clip reference of :class:`ascnet.data.batch_augment.BatchAugment` (which
    the loader and the trainer run, with parameters drawn by
    :class:`ascnet.data.batch_augment.ParamSampler`: the same draws as this pipeline): the two
    are tested equal for the same seed. The clip is converted to float once, first, so the crop's
    resampling is not rounded to uint8 (as in the batched ops) and jitter, grayscale and blur
    work in float32; the colour ops then see only the S x S crop. Hue and blur use our faster equivalents of the
    torchvision kernels (:func:`adjust_hue`, :class:`SeparableGaussianBlur`): those two were
    about 90% of the augmentation time.
    """
    ops = [
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomResizedCrop(crop_size, scale=tuple(scale), ratio=tuple(ratio), antialias=True),
    ]
    if flip_prob > 0:
        ops.append(v2.RandomHorizontalFlip(flip_prob))
    if color_jitter_prob > 0 and any(c > 0 for c in color_jitter):
        b, c, s, h = color_jitter
        ops.append(v2.RandomApply([VideoColorJitter(b, c, s, h)], p=color_jitter_prob))
    if grayscale_prob > 0:
        ops.append(VideoRandomGrayscale(grayscale_prob))
    if blur_prob > 0:
        ops.append(v2.RandomApply([SeparableGaussianBlur(_blur_kernel(crop_size), sigma=blur_sigma)], p=blur_prob))
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
