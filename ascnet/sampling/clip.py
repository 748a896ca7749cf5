"""Clip samplers: which frames of a video make each clip.

A clip sampler maps a video's length (in frames) and native frame rate, plus a
``torch.Generator``, to the frame indices of every clip it wants. Indices are computed on a
*resampled timeline* at ``DATA.TARGET_FPS`` (the native timeline when it is 0): a clip at
playback speed ``s`` takes every ``s * DATA.SAMPLING_RATE``-th frame of that timeline, and each
resampled frame ``k`` is then mapped back to the native frame shown at time ``k / TARGET_FPS``.
The decoder (``ascnet/data/decoder.py``) decodes the union of the returned native indices once.

Resampling only ever goes down: a video whose native rate is at or below ``TARGET_FPS`` keeps
its native timeline. Upsampling would only repeat frames (12 fps Something-Something v2 video at
25 fps shows each frame about twice), so a 16-frame clip would hold about 8 distinct frames and
the "2x" clip would be the 1x clip of the native video; a low-frame-rate video's clips span more
time instead.

Short videos. A clip needs ``(NUM_FRAMES - 1) * stride + 1`` resampled frames. When the video
is shorter, ``DATA.SHORT_VIDEO_POLICY`` decides:

* ``"fail"`` (default for training): raise :class:`VideoTooShortError`; the dataset counts it as
  a failure and retries another video (ascnet/data/datasets/base.py);
* ``"loop"``: the indices wrap around to the start of the video;
* ``"clamp"``: the indices past the end repeat the last frame (PySlowFast's behaviour).

The test-mode sampler (:class:`UniformMultiViewSampler`) never fails on a short video, since every
evaluation video must count: it clamps unless ``"loop"`` is set.
"""
import math
from typing import List, Optional, Sequence

import torch
from fvcore.common.config import CfgNode

from .build import CLIP_SAMPLER_REGISTRY

SHORT_VIDEO_POLICIES = ("fail", "loop", "clamp")


class VideoTooShortError(RuntimeError):
    """The video has fewer frames than a clip needs (and the policy is ``"fail"``)."""


def resampled_length(num_frames: int, fps: float, target_fps: float) -> int:
    """Number of frames of a ``num_frames`` video at ``fps`` once resampled to ``target_fps``.

    ``target_fps`` <= 0, or >= ``fps`` (never upsample), keeps the native timeline.
    """
    if not 0 < target_fps < fps:
        return int(num_frames)
    return max(int(math.floor(num_frames * target_fps / fps + 1e-6)), 1 if num_frames > 0 else 0)


def to_native_indices(indices: torch.Tensor, fps: float, target_fps: float, num_frames: int) -> torch.Tensor:
    """Map resampled-timeline indices to the native frames shown at the same times.

    Args:
        indices: (T,) int64 indices on the ``target_fps`` timeline.
        fps: native frame rate of the video.
        target_fps: resampling rate (<= 0 or >= ``fps``: identity; never upsampled).
        num_frames: native frame count (results are clamped to ``num_frames - 1``).

    Returns:
        (T,) int64 native frame indices.
    """
    if not 0 < target_fps < fps:
        out = indices
    else:
        # The +1e-6 keeps k * fps / target_fps exact when the ratio is an integer (25 -> 50 fps).
        out = torch.floor(indices.double() * (fps / target_fps) + 1e-6).long()
    return out.clamp_(0, max(num_frames - 1, 0))


class ClipSampler:
    """Base class: common config and the index arithmetic shared by all clip samplers.

    Args:
        cfg: the run config (reads ``DATA.NUM_FRAMES``, ``DATA.SAMPLING_RATE``,
            ``DATA.TARGET_FPS``, ``DATA.SHORT_VIDEO_POLICY``).
        mode: "pretrain" | "train" | "test".

    Calling the sampler: ``sampler(num_frames, fps, generator) -> List[LongTensor]``, one (T,)
    tensor of native frame indices per clip.
    """

    def __init__(self, cfg: CfgNode, mode: str):
        self.mode = mode
        self.num_frames = int(cfg.DATA.NUM_FRAMES)
        self.sampling_rate = int(cfg.DATA.SAMPLING_RATE)
        self.target_fps = float(cfg.DATA.TARGET_FPS)
        self.short_video_policy = str(cfg.DATA.get("SHORT_VIDEO_POLICY", "fail"))
        if self.short_video_policy not in SHORT_VIDEO_POLICIES:
            raise ValueError(
                f"DATA.SHORT_VIDEO_POLICY is {self.short_video_policy!r}; choose one of {list(SHORT_VIDEO_POLICIES)}."
            )

    def span(self, stride: int) -> int:
        """Resampled frames covered by one clip with this stride."""
        return (self.num_frames - 1) * stride + 1

    def clip_indices(self, start: int, stride: int, length: int, policy: str) -> torch.Tensor:
        """Resampled indices ``start + j * stride`` (j < NUM_FRAMES), with the short-video policy."""
        idx = start + stride * torch.arange(self.num_frames, dtype=torch.long)
        if length <= 0:
            raise VideoTooShortError("The video has no frames.")
        if int(idx[-1]) >= length:
            if policy == "fail":
                raise VideoTooShortError(
                    f"A clip of {self.num_frames} frames at stride {stride} needs {self.span(stride)} frames "
                    f"(at DATA.TARGET_FPS={self.target_fps:g}); the video has {length}. Set "
                    "DATA.SHORT_VIDEO_POLICY to 'loop' or 'clamp' to use short videos anyway."
                )
            idx = idx % length if policy == "loop" else idx.clamp(max=length - 1)
        return idx

    def random_start(self, length: int, span: int, generator: Optional[torch.Generator]) -> int:
        """A uniform start in [0, length - span] (0 when the video is shorter than the span)."""
        hi = length - span
        if hi <= 0:
            return 0
        return int(torch.randint(0, hi + 1, (1,), generator=generator))

    def __call__(self, num_frames: int, fps: float, generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
        raise NotImplementedError


@CLIP_SAMPLER_REGISTRY.register()
class PlaybackSpeedSampler(ClipSampler):
    """One clip per playback speed in ``DATA.SPEEDS``, each at an independent random start.

    The clip at speed ``s`` has stride ``s * DATA.SAMPLING_RATE`` on the resampled timeline, so
    on any video the 2x clip spans twice the time of the 1x clip.
    """

    def __init__(self, cfg: CfgNode, mode: str = "pretrain", speeds: Optional[Sequence[int]] = None):
        super().__init__(cfg, mode)
        self.speeds = [int(s) for s in (speeds if speeds is not None else cfg.DATA.SPEEDS)]

    def __call__(self, num_frames: int, fps: float, generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
        length = resampled_length(num_frames, fps, self.target_fps)
        clips = []
        for s in self.speeds:
            stride = s * self.sampling_rate
            start = self.random_start(length, self.span(stride), generator)
            idx = self.clip_indices(start, stride, length, self.short_video_policy)
            clips.append(to_native_indices(idx, fps, self.target_fps, num_frames))
        return clips


@CLIP_SAMPLER_REGISTRY.register()
class RandomClipSampler(PlaybackSpeedSampler):
    """One clip at speed 1 (stride ``DATA.SAMPLING_RATE``) at a random start (supervised training)."""

    def __init__(self, cfg: CfgNode, mode: str = "train"):
        super().__init__(cfg, mode, speeds=[1])


@CLIP_SAMPLER_REGISTRY.register()
class UniformMultiViewSampler(ClipSampler):
    """``num_clips`` clips at speed 1 with uniformly spaced starts; deterministic.

    The first clip starts at frame 0 and the last one ends at the last frame, so together they
    cover the video (one clip: centred). Spatial crops are not chosen here: the dataset crops
    each clip ``num_crops`` times (``ascnet/data/transforms.py``).

    Args:
        cfg: the run config.
        mode: normally "test".
        num_clips: clips per video (default ``TEST.NUM_ENSEMBLE_VIEWS``, which retrieval sets
            to ``RETRIEVAL.NUM_CLIPS``).
    """

    def __init__(self, cfg: CfgNode, mode: str = "test", num_clips: Optional[int] = None):
        super().__init__(cfg, mode)
        self.num_clips = int(num_clips if num_clips is not None else cfg.TEST.NUM_ENSEMBLE_VIEWS)
        if self.num_clips < 1:
            raise ValueError(f"The number of test clips must be >= 1, got {self.num_clips}.")
        # Every evaluation video must count: never fail on a short one.
        if self.short_video_policy == "fail":
            self.short_video_policy = "clamp"

    def starts(self, length: int) -> List[int]:
        """Start frames (resampled timeline) of the clips."""
        room = max(length - self.span(self.sampling_rate), 0)
        if self.num_clips == 1:
            return [room // 2]
        return [int(round(i * room / (self.num_clips - 1))) for i in range(self.num_clips)]

    def __call__(self, num_frames: int, fps: float, generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
        length = resampled_length(num_frames, fps, self.target_fps)
        out = []
        for start in self.starts(length):
            idx = self.clip_indices(start, self.sampling_rate, length, self.short_video_policy)
            out.append(to_native_indices(idx, fps, self.target_fps, num_frames))
        return out
