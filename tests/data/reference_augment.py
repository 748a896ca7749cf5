"""The per-clip torchvision reference of the training augmentation.

:class:`ascnet.data.batch_augment.BatchAugment` (with parameters drawn by
:class:`ascnet.data.batch_augment.ParamSampler`) is the augmentation ascnet runs; this pipeline
is what it is tested equal to (``tests/data/test_batch_augment.py``): the same draws on torch's
RNG for the same seed, the same output within float32 rounding.

Clips enter as (T, C, H, W) uint8 tensors and leave as (C, T, H, W) float32 tensors normalised
with the mean / std after scaling to 0..1: random resized crop, horizontal flip, colour jitter,
grayscale, Gaussian blur, normalisation. A (T, C, H, W) tensor is one "image batch" for v2, so
each call draws ONE set of parameters shared by all frames of the clip, and two calls draw
independently. :class:`ClipTransform` runs under ``torch.random.fork_rng`` seeded from the
per-sample seed. The settings' defaults are the config's (``AUG.*`` in
``ascnet/config/defaults.py``, through :func:`ascnet.data.batch_augment.param_settings`).
"""
from typing import Optional, Sequence

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F

from ascnet.config import get_cfg
from ascnet.data.batch_augment import param_settings
from ascnet.data.transforms import adjust_hue, blur_kernel_size


def aug_settings(**overrides) -> dict:
    """The ``AUG.*`` defaults as :class:`ParamSampler` / :func:`create_train_transform` keyword
    arguments, with ``overrides``."""
    return {**param_settings(get_cfg()), **overrides}


class VideoRandomGrayscale(torch.nn.Module):
    """Grayscale with probability ``p`` that works on videos.

    ``v2.RandomGrayscale`` silently does nothing to a ``tv_tensors.Video`` (torchvision 0.2x, even at p=1), so
    we call the functional kernel on the plain tensor ourselves. All C=3 output channels are equal.

    Args:
        p: probability of converting the clip.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) -> same shape; one draw per call."""
        if self.p <= 0 or float(torch.rand(1)) >= self.p:
            return clip
        plain = clip.as_subclass(torch.Tensor)
        return F.rgb_to_grayscale(plain, num_output_channels=plain.shape[-3])


class VideoColorJitter(torch.nn.Module):
    """``v2.ColorJitter`` for float clips with the fast exact hue (:func:`adjust_hue`).

    Same parameter distribution as torchvision: factors uniform in [1 - x, 1 + x] (hue in
    [-h, h]), applied in a random order; one draw per call (per clip).
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float):
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

    def __init__(self, kernel_size: int, sigma: Sequence[float]):
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


def create_train_transform(
    crop_size: int = 112, mean: Sequence[float] = (0.45, 0.45, 0.45), std: Sequence[float] = (0.225, 0.225, 0.225),
    **settings,
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

    ``settings``: those of :func:`aug_settings` (``enable`` is ignored; the defaults are the
    config's).
    """
    s = aug_settings(**settings)
    scale, ratio, flip_prob, color_jitter = s["scale"], s["ratio"], s["flip_prob"], s["color_jitter"]
    color_jitter_prob, grayscale_prob, blur_prob, blur_sigma = (
        s["color_jitter_prob"], s["grayscale_prob"], s["blur_prob"], s["blur_sigma"])
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
        ops.append(v2.RandomApply([SeparableGaussianBlur(blur_kernel_size(crop_size), sigma=blur_sigma)], p=blur_prob))
    ops.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(ops)


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


def build_train_transform(cfg) -> ClipTransform:
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
    return ClipTransform(create_train_transform(cfg.DATA.CROP_SIZE, cfg.DATA.MEAN, cfg.DATA.STD, **param_settings(cfg)))


