"""Batched clip augmentation: parameters drawn per clip in the loader, ops applied per batch.

The loader does per sample only what must happen on the CPU: it decodes the frames (scaled to
``AUG.LOAD_SIZE`` in the same swscale pass that converts YUV to RGB, see
``ascnet/data/decoder.py``), and draws each clip's augmentation parameters from the sample's
seed with exactly the random draws of the per-clip torchvision pipeline
(``tests/data/reference_augment.py``, the reference it is tested equal to): the same ``torch`` calls in the same
order under the same forked, seeded RNG, so the ``(seed, epoch, iteration, sample)``
derivation and exact resume hold. The samples hold uint8 clips (in the decoder's (T, H, W, C)
layout) and these parameters.

:class:`BatchAugment` then applies the parameterised ops to a whole batch with one tensor op per
step (no Python loop over clips), wherever ``AUG.DEVICE`` says: on the training device after
the host-to-device copy (``"device"``, the default; on a CPU-only run that is the main process),
or inside the loader on the clips of one sample (``"loader"``). Both run this same code, so
both give the same clips. For the same parameters the output equals that of the per-clip
pipeline within float32 rounding (``tests/data/test_batch_augment.py``).

Ops, in the per-clip pipeline's order, on (B, C, T, H, W) clips:

1. uint8 -> float in [0, 1];
2. random resized crop: the crop box, drawn on the video's own frame size and mapped onto the
   loaded frame, resampled to ``CROP_SIZE`` with torch's antialiased bilinear filter written as
   two batched products with per-clip (S, H) and (S, W) weight matrices (an ROI resize; on the
   CPU torch's own kernel per clip, which is cheaper there, see :func:`resized_crop`);
3. horizontal flip (folded into the width matrix); 4. colour jitter (brightness, contrast, saturation, hue; each clip its own
   factors and order); 5. grayscale; 6. Gaussian blur (per-clip sigma, separable, reflect
   padding); 7. normalisation with ``DATA.MEAN`` / ``DATA.STD``.

Parameters of one clip (a dict of tensors; collation stacks them to (N, ...) or (N, S, ...)):

- ``box``: (4,) float32 ``(top, left, height, width)`` in the loaded frame's pixels;
- ``flip``, ``jitter``, ``gray``, ``blur``: () bool;
- ``order``: (4,) int64, the jitter ops' order (0 brightness, 1 contrast, 2 saturation, 3 hue);
- ``factors``: (4,) float32 jitter factors (identity 1, 1, 1, 0 where not drawn);
- ``sigma``: () float32 blur sigma (0 where not drawn).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torchvision.transforms.v2 as v2
from fvcore.common.config import CfgNode

from .transforms import adjust_hue, blur_kernel_size

AUG_DEVICES = ("device", "loader")
PARAM_KEYS = ("box", "flip", "jitter", "order", "factors", "gray", "blur", "sigma")


def load_size(cfg: CfgNode) -> int:
    """Side of the square frames the loader decodes to (``AUG.LOAD_SIZE``; 0: 8/7 of the crop)."""
    size = int(cfg.AUG.LOAD_SIZE)
    return size if size > 0 else int(round(cfg.DATA.CROP_SIZE * 8 / 7))


class ParamSampler:
    """Draws the augmentation parameters of one clip from torch's global RNG.

    The draws are those of the per-clip reference pipeline (``tests/data/reference_augment.py``) for the same
    settings, call for call: ``v2.RandomResizedCrop.make_params`` on the video's own frame size,
    then ``torch.rand(1)`` for the flip, ``torch.rand(1)``, ``torch.randperm(4)`` and one uniform
    per active jitter op, ``torch.rand(1)`` for grayscale, ``torch.rand(1)`` and a uniform sigma
    for the blur; an op with probability 0 draws nothing (it is not in that pipeline either).

    Args: the ``AUG.*`` settings (``enable`` False: a centre square, no other op), as
    :func:`param_settings` maps them; their defaults are the config's, written once in
    ``ascnet/config/defaults.py``.
    """

    def __init__(
        self,
        *,
        enable: bool,
        scale: Sequence[float],
        ratio: Sequence[float],
        flip_prob: float,
        color_jitter: Sequence[float],
        color_jitter_prob: float,
        grayscale_prob: float,
        blur_prob: float,
        blur_sigma: Sequence[float],
    ):
        self.enable = bool(enable)
        self.rrc = v2.RandomResizedCrop(1, scale=tuple(scale), ratio=tuple(ratio), antialias=True)
        self.flip_prob = float(flip_prob)
        self.jitter = tuple(float(c) for c in color_jitter)
        if not 0 <= self.jitter[3] <= 0.5:
            raise ValueError(f"AUG.COLOR_JITTER hue must be in [0, 0.5], got {self.jitter[3]}.")
        self.jitter_prob = float(color_jitter_prob) if any(c > 0 for c in self.jitter) else 0.0
        self.gray_prob = float(grayscale_prob)
        self.blur_prob = float(blur_prob)
        self.blur_sigma = (float(blur_sigma[0]), float(blur_sigma[1]))

    def __call__(self, height: int, width: int) -> Dict[str, object]:
        """Parameters for a clip of ``height`` x ``width`` frames (Python values; box in those
        pixels). :func:`stack_params` turns a list of them into the tensors described above."""
        flip = jitter = gray = blur = False
        order = torch.arange(4)
        factors = [1.0, 1.0, 1.0, 0.0]
        sigma = 0.0
        if not self.enable:
            side = min(height, width)
            box = [(height - side) // 2, (width - side) // 2, side, side]
        else:
            p = self.rrc.make_params([torch.empty(0, height, width)])
            box = [p["top"], p["left"], p["height"], p["width"]]
            if self.flip_prob > 0:
                flip = not bool(torch.rand(1) >= self.flip_prob)
            if self.jitter_prob > 0:
                jitter = not bool(torch.rand(1) >= self.jitter_prob)
                if jitter:
                    order = torch.randperm(4)
                    for i in order.tolist():
                        x = self.jitter[i]
                        if x > 0:
                            lo, hi = (-x, x) if i == 3 else (max(1.0 - x, 0.0), 1.0 + x)
                            factors[i] = float(torch.empty(1).uniform_(lo, hi))
            if self.gray_prob > 0:
                gray = not float(torch.rand(1)) >= self.gray_prob
            if self.blur_prob > 0:
                blur = not bool(torch.rand(1) >= self.blur_prob)
                if blur:
                    sigma = float(torch.empty(1).uniform_(self.blur_sigma[0], self.blur_sigma[1]))
        return {
            "box": [float(v) for v in box], "flip": flip, "jitter": jitter, "order": order.tolist(),
            "factors": factors, "gray": gray, "blur": blur, "sigma": sigma,
        }

    def draw(self, height: int, width: int, seed: Optional[int] = None) -> Dict[str, object]:
        """:meth:`__call__` with torch's CPU RNG seeded with ``seed`` (as the reference ``ClipTransform`` does
        under ``fork_rng``), restored afterwards.

        ``torch.default_generator`` is seeded directly: ``torch.manual_seed`` also queues the
        seeding of accelerators (recording a Python stack each time), about 0.4 ms per call,
        for draws that only use the CPU generator.
        """
        if seed is None:
            return self(height, width)
        gen = torch.default_generator
        state = gen.get_state()
        gen.manual_seed(int(seed) % (2**63))
        try:
            return self(height, width)
        finally:
            gen.set_state(state)


def param_settings(cfg: CfgNode) -> Dict[str, object]:
    """The ``AUG.*`` settings as :class:`ParamSampler` keyword arguments."""
    a = cfg.AUG
    return dict(
        enable=a.ENABLE, scale=a.RRC_SCALE, ratio=a.RRC_RATIO, flip_prob=a.FLIP_PROB,
        color_jitter=a.COLOR_JITTER, color_jitter_prob=a.COLOR_JITTER_PROB,
        grayscale_prob=a.GRAYSCALE_PROB, blur_prob=a.BLUR_PROB, blur_sigma=a.BLUR_SIGMA,
    )


def build_param_sampler(cfg: CfgNode) -> ParamSampler:
    """:class:`ParamSampler` from ``AUG.*``."""
    return ParamSampler(**param_settings(cfg))


_DTYPES = {
    "box": torch.float32, "flip": torch.bool, "jitter": torch.bool, "order": torch.int64,
    "factors": torch.float32, "gray": torch.bool, "blur": torch.bool, "sigma": torch.float32,
}


def stack_params(params: Sequence[Dict[str, object]], native: Tuple[int, int], loaded: Tuple[int, int]) -> Dict[str, torch.Tensor]:
    """Drawn parameters of clips -> dict of (len(params), ...) tensors; the boxes are mapped from
    ``native`` (H, W) pixels onto frames resized to ``loaded`` (H, W)."""
    out = {k: torch.tensor([p[k] for p in params], dtype=dt) for k, dt in _DTYPES.items()}
    if tuple(native) != tuple(loaded):
        sy, sx = loaded[0] / native[0], loaded[1] / native[1]
        out["box"] = out["box"] * torch.tensor([sy, sx, sy, sx], dtype=torch.float32)
    return out


# ------------------------------------------------------------------------------------------------
# Batched ops on (B, C, T, H, W) float clips
# ------------------------------------------------------------------------------------------------
def resize_weights(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """Antialiased bilinear resampling matrices of 1-D windows: (B, out_size, in_size).

    Row i of clip b holds the weights of the input pixels for output pixel i when the window
    ``[start_b, start_b + length_b)`` (input pixels, may be fractional) is resized to
    ``out_size``. These are the weights of torch's ``interpolate(mode="bilinear",
    antialias=True, align_corners=False)`` on the cropped window (a triangle filter widened by
    the downscale factor, restricted to the window's pixels, normalised per output pixel), so a
    crop + resize is one product with this matrix. We build the matrices ourselves because
    ``torchvision.ops.roi_align`` averages a fixed grid of bilinear samples, which is not the
    antialiased filter of the per-clip pipeline.
    """
    dtype = torch.float64
    start = start.to(dtype).view(-1, 1, 1)
    length = length.to(dtype).view(-1, 1, 1)
    dev = start.device
    scale = length / out_size
    invscale = torch.where(scale >= 1, 1.0 / scale, torch.ones_like(scale))
    center = scale * (torch.arange(out_size, device=dev, dtype=dtype).view(1, -1, 1) + 0.5)
    pos = torch.arange(in_size, device=dev, dtype=dtype).view(1, 1, -1) + 0.5 - start  # pixel centres
    w = (1.0 - ((pos - center) * invscale).abs()).clamp_(min=0.0)
    w = w * ((pos > 0) & (pos < length))
    total = w.sum(dim=-1, keepdim=True)
    # A window narrower than a pixel between two centres: take the nearest pixel.
    nearest = (start + center - 0.5).round().clamp_(0, in_size - 1)
    one_hot = (torch.arange(in_size, device=dev, dtype=dtype).view(1, 1, -1) == nearest).to(dtype)
    w = torch.where(total > 0, w / total.clamp(min=1e-12), one_hot)
    return w.float()


def resized_crop(
    x: torch.Tensor, box: torch.Tensor, size: int, flip: Optional[torch.Tensor] = None, scale: float = 1.0,
    dense: Optional[bool] = None,
) -> torch.Tensor:
    """Per-clip crop + antialiased resize (+ horizontal flip, x ``scale``):
    (B, C, T, H, W) float, box (B, 4) -> (B, C, T, size, size).

    On a GPU: two batched products with the per-clip resampling matrices (:func:`resize_weights`;
    the flip reverses the rows of the width matrix, ``scale`` is folded into it). On the CPU the
    dense products cost several times torch's own antialiased kernel, which only visits each
    output pixel's support, so there each clip's integer box is cropped and resized with
    ``interpolate`` (the per-clip pipeline's kernel; fractional boxes take the products).
    ``dense`` True / False forces the products / the per-clip kernel (tests).
    """
    b, c, t, h, w = x.shape
    boxes = None
    if dense is None:
        # Only on the CPU, where reading the boxes is no device synchronisation: one host read.
        boxes = box.tolist() if x.device.type == "cpu" else None
        dense = boxes is None or any(v != round(v) for row in boxes for v in row)
    if not dense:
        # uint8 input: only the crop is converted (``to(float32) * scale``, as ``v2.ToDtype``).
        out = torch.empty(b, c, t, size, size, dtype=torch.float32, device=x.device)
        rows = box.tolist() if boxes is None else boxes
        for i, (top, left, bh, bw) in enumerate([[int(round(v)) for v in row] for row in rows]):
            crop = x[i, :, :, top : top + bh, left : left + bw].to(torch.float32, memory_format=torch.contiguous_format)
            if not x.is_floating_point():
                crop.mul_(scale)
            r = torch.nn.functional.interpolate(
                crop.reshape(c * t, 1, bh, bw), size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            out[i] = r.view(c, t, size, size)
        if flip is not None:
            out = torch.where(flip.view(-1, 1, 1, 1, 1), out.flip(-1), out)
        return out.mul_(scale) if x.is_floating_point() and scale != 1.0 else out
    if not x.is_floating_point():
        x = x.to(torch.float32, memory_format=torch.contiguous_format)
    box = box.to(x.device)
    wy = resize_weights(box[:, 0], box[:, 2], h, size)  # (B, S, H)
    wx = resize_weights(box[:, 1], box[:, 3], w, size)  # (B, S, W)
    if flip is not None:
        wx = torch.where(flip.view(-1, 1, 1), wx.flip(1), wx)
    if scale != 1.0:
        wx = wx * scale
    out = torch.bmm(x.reshape(b, c * t * h, w), wx.transpose(1, 2))  # width pass: (B, CTH, S)
    out = torch.matmul(wy.unsqueeze(1), out.view(b, c * t, h, size))  # height pass: (B, CT, S, S)
    return out.view(b, c, t, size, size)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, 1, T, H, W) luma, torchvision's weights."""
    r, g, b = x.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def _jitter_position(x: torch.Tensor, op: torch.Tensor, active: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """One position of the jitter order for the whole batch: clip b applies op ``op[b]`` (0
    brightness, 1 contrast, 2 saturation, 3 hue) with its factor when ``active[b]``.

    Brightness, contrast and saturation are one blend ``clamp(f x + (1 - f) other)`` with
    ``other`` 0, the frame's mean luma or the luma (torchvision's ops), so they run as one pass
    ``x * a + luma * b + mean * c`` with per-clip coefficients (the zero terms add exact
    zeros: the same values as each op alone); hue is the only other pass. ``torch.where`` keeps
    each result for its clips: no host synchronisation to select them.
    """
    f = factors.gather(1, op.view(-1, 1)).view(-1, 1, 1, 1, 1)  # (B,) factor of each clip's op
    op5 = op.view(-1, 1, 1, 1, 1)
    rest = 1.0 - f
    zero = torch.zeros_like(f)
    gray = _gray(x)
    mean = gray.mean(dim=(1, 3, 4), keepdim=True)
    blend = x.mul(f).add_(gray * torch.where(op5 == 2, rest, zero)).add_(mean * torch.where(op5 == 1, rest, zero))
    active5 = active.view(-1, 1, 1, 1, 1)
    x = torch.where(active5 & (op5 < 3), blend.clamp_(0.0, 1.0), x)
    return torch.where(active5 & (op5 == 3), adjust_hue(x, factors[:, 3].view(-1, 1, 1, 1), dim=1), x)


def blur_matrices(sigma: torch.Tensor, n: int, kernel_size: int) -> torch.Tensor:
    """(B,) sigmas -> (B, n, n) matrices M with ``M @ x`` = Gaussian blur under reflect padding."""
    half = (kernel_size - 1) * 0.5
    xs = torch.linspace(-half, half, steps=kernel_size, dtype=torch.float32, device=sigma.device)
    k1 = torch.softmax(-0.5 * (xs.view(1, -1) / sigma.view(-1, 1).float()).pow(2), dim=1)  # (B, K)
    i = torch.arange(n, device=sigma.device).view(-1, 1)
    src = (i + torch.arange(kernel_size, device=sigma.device).view(1, -1) - kernel_size // 2).abs()
    src = torch.where(src >= n, 2 * (n - 1) - src, src)  # (n, K)
    b = sigma.numel()
    m = torch.zeros(b, n, n, dtype=torch.float32, device=sigma.device)
    return m.scatter_add_(2, src.expand(b, n, kernel_size), k1.view(b, 1, kernel_size).expand(b, n, kernel_size).contiguous())


class BatchAugment(torch.nn.Module):
    """Applies drawn parameters to a batch of uint8 clips, then normalises.

    Args:
        crop_size: output side S (``DATA.CROP_SIZE``).
        mean, std: ``DATA.MEAN`` / ``DATA.STD``.
        cpu_kernel: on the CPU, crop whole-pixel boxes with torch's kernel per clip (cheaper
            there than the products; it reads the boxes on the host, which on the CPU is no
            device synchronisation). False: the products everywhere, the path a GPU runs
            (the synchronisation tests count that path on the CPU).

    The step runs no op that synchronises with the host on a GPU (no ``nonzero``, ``any()``
    or boolean-mask indexing): each op is applied to the whole batch and ``torch.where`` keeps
    it for the clips that drew it (``tests/data/test_batch_augment.py``,
    ``tests/engine/test_step.py``).

    Call: ``(clips (..., T, H, W, C) uint8, params with matching leading dims) ->
    (..., C, T, S, S)`` float32 on the clips' device. The uint8 clips keep the decoder's
    channels-last layout: the transposition to channels-first is a strided copy that costs the
    loader more than the rest of its work after decoding, and is free here (it happens as part
    of the float conversion, on the device). Float clips are taken as (..., C, T, H, W) in [0, 1]. The leading dims (N or N, S) are flattened
    into one batch B; every op below is one tensor op over that batch (jitter: per position
    of the order, one blend pass and one hue pass over the whole batch, each kept for the
    clips that have it there).
    """

    def __init__(self, crop_size: int, mean: Sequence[float], std: Sequence[float], cpu_kernel: bool = True):
        super().__init__()
        self.crop_size = int(crop_size)
        self.cpu_kernel = bool(cpu_kernel)
        self.kernel_size = blur_kernel_size(self.crop_size)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1, 1), persistent=False)

    def forward(self, clips: torch.Tensor, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        lead = clips.shape[:-4]
        x = clips.reshape(-1, *clips.shape[-4:])
        if not x.is_floating_point():
            x = x.permute(0, 4, 1, 2, 3)  # (B, T, H, W, C) -> (B, C, T, H, W), a view
        dev = x.device
        # Parameters already on the clips' device (the trainer moves the whole batch) are used as
        # they are; the others (e.g. CPU parameters of device clips) are copied there.
        p = {k: params[k].to(dev, non_blocking=True) for k in PARAM_KEYS}
        p = {k: v.reshape(x.shape[0], *v.shape[len(lead):]) for k, v in p.items()}
        # On the CPU (cpu_kernel) resized_crop takes torch's kernel per clip on the converted crop
        # (the per-clip pipeline's order) when the boxes are whole pixels, else the products.
        dense = None if self.cpu_kernel and dev.type == "cpu" else True
        if x.is_floating_point():
            x = resized_crop(x.float(), p["box"], self.crop_size, flip=p["flip"], dense=dense)
        else:  # uint8: the 1 / 255 folded into the resampling matrix or into the per-clip crop
            x = resized_crop(x, p["box"], self.crop_size, flip=p["flip"], scale=1.0 / 255, dense=dense)
        # Every op below runs on the whole batch and torch.where keeps its result for the clips
        # that have it: no nonzero / any() (host synchronisations on a GPU) to pick the clips.
        for k in range(4):
            x = _jitter_position(x, p["order"][:, k], p["jitter"], p["factors"])
        x = torch.where(p["gray"].view(-1, 1, 1, 1, 1), _gray(x).expand_as(x), x)
        blur = p["blur"]
        n, c, t, h, w = x.shape
        sigma = torch.where(blur, p["sigma"], torch.ones_like(p["sigma"]))  # no 0 sigma where unused
        m = blur_matrices(sigma, w, self.kernel_size)  # square crops: h == w
        blurred = torch.bmm(x.reshape(n, c * t * h, w), m.transpose(1, 2)).view(n, c * t, h, w)
        blurred = torch.matmul(m.unsqueeze(1), blurred).view(n, c, t, h, w)
        x = torch.where(blur.view(-1, 1, 1, 1, 1), blurred, x)
        x = x.sub_(self.mean).div_(self.std)
        return x.view(*lead, *x.shape[1:])


def normalize_clips(clips: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (..., C, T, H, W) -> float32 ``(x / 255 - mean) / std`` on the clips' device.

    Float input is returned unchanged (it is already normalised).
    """
    if clips.is_floating_point():
        return clips
    shape = (-1, 1, 1, 1)
    m = torch.tensor(list(mean), dtype=torch.float32, device=clips.device).view(shape)
    s = torch.tensor(list(std), dtype=torch.float32, device=clips.device).view(shape)
    return (clips.float().mul_(1.0 / 255) - m) / s


def build_batch_augment(cfg: CfgNode) -> BatchAugment:
    """:class:`BatchAugment` from ``DATA.CROP_SIZE`` / ``DATA.MEAN`` / ``DATA.STD``."""
    if cfg.AUG.DEVICE not in AUG_DEVICES:
        raise ValueError(f"AUG.DEVICE must be one of {list(AUG_DEVICES)}, got {cfg.AUG.DEVICE!r}.")
    return BatchAugment(cfg.DATA.CROP_SIZE, cfg.DATA.MEAN, cfg.DATA.STD)


def augment_batch(batch: Dict, augment: BatchAugment, source: str = "the dataset") -> Dict:
    """Replace ``batch["clips"]`` (uint8) by its augmented float clips when the batch carries
    ``"aug"`` parameters; uint8 clips without parameters (test mode) are normalised. Returns a
    new dict (the batch itself when it holds no clip tensor).

    Args:
        batch: collated samples: ``"clips"`` uint8 (N, S, T, H, W, C) / (N, T, H, W, C) /
            (N, V, C, T, H, W) and ``"aug"`` (dict of (N, ...) parameter tensors).
        augment: the batched augmentation.
        source: who made the batch (the dataset class), named by the error.

    Raises:
        AnnotationError: the clips are float: the dataset returned clips in a format the
            augmentation cannot take, which would otherwise train without augmentation.
    """
    clips = batch.get("clips")
    if not isinstance(clips, torch.Tensor):
        return batch
    if clips.is_floating_point():
        from .utils import AnnotationError

        raise AnnotationError(
            f"{source} returned {clips.dtype} clips of shape {tuple(clips.shape[1:])}, but AUG.DEVICE is "
            "'device': datasets return uint8 (S, T, H, W, C) clips plus their 'aug' parameters and the "
            "trainer augments them (docs/plugins.md, 'A dataset'); return uint8 clips, or set AUG.DEVICE "
            "loader if the dataset augments and normalises its clips itself."
        )
    out = {k: v for k, v in batch.items() if k != "aug"}
    if "aug" in batch:
        out["clips"] = augment(clips, batch["aug"])
    else:
        out["clips"] = normalize_clips(clips, augment.mean.flatten().tolist(), augment.std.flatten().tolist())
    return out


__all__ = [
    "AUG_DEVICES", "BatchAugment", "ParamSampler", "augment_batch", "blur_matrices", "build_batch_augment",
    "build_param_sampler", "load_size", "normalize_clips", "param_settings", "resize_weights", "resized_crop",
    "stack_params",
]
