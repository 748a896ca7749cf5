"""Video decoding with PyAV: only the frames a sample needs, converted on one thread.

torchvision 0.29 has no video I/O, so decoding goes straight through PyAV (FFmpeg). Local paths
are opened by FFmpeg directly; any other iopath URI is streamed through ``g_pathmgr.open``.
Audio is never decoded.

Two choices matter for speed (docs/benchmarks.md "Data throughput"):

* Only the needed frames are decoded: the container is seeked to the key frame before the first
  needed frame, decoding stops after the last one, and only needed frames are converted to
  RGB. The clips of all playback speeds of a sample are decoded in one pass over the union
  window (a frame shared by two clips is converted once).
* YUV -> RGB conversion runs with ``threads=1``: when a process may use several cores, FFmpeg's
  multithreaded swscale makes decode + convert about 3x slower (measured on 2 cores, x264 at
  128x172: 120 -> 38 videos/s).
"""
import bisect
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import av
import numpy as np
import torch
from iopath.common.file_io import g_pathmgr

logger = logging.getLogger(__name__)

# Below this frame index, decoding from the start is cheaper than a seek (which re-opens the
# demuxer state and may land on the same key frame anyway).
_SEEK_MIN_FRAME = 32


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded (missing, empty, truncated or corrupt file)."""


@dataclass
class VideoInfo:
    """What the samplers need to know about a video stream.

    Attributes:
        num_frames: frames in the stream (from the container, else estimated from the duration).
        fps: native frame rate (frames per second).
        time_base: the stream's time base (seconds per pts tick).
        start_pts: pts of the first frame.
        width, height: frame size in pixels from the header (0 when the header has none).
    """

    num_frames: int
    fps: float
    time_base: Fraction
    start_pts: int
    width: int = 0
    height: int = 0

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.fps if self.fps > 0 else 0.0


class _NoFile:
    """Stands in for the Python file object when FFmpeg reads a local path itself."""

    def close(self) -> None:
        pass


def _open(path: str):
    """Open ``path`` with PyAV: (file object to close, container).

    Local files are handed to FFmpeg by name (its own buffered I/O, faster than reading through
    a Python file object); other iopath URIs are read through ``g_pathmgr.open``.
    """
    local = path[len("file://") :] if path.startswith("file://") else path
    is_local = "://" not in local
    try:
        if is_local:
            if not os.path.isfile(local):
                raise FileNotFoundError(f"No such file: {local!r}")
            f = _NoFile()
        else:
            f = g_pathmgr.open(path, "rb")
    except (FileNotFoundError, OSError) as e:
        raise VideoDecodeError(f"Cannot open video {path!r}: {e}") from e
    try:
        container = av.open(local if is_local else f, mode="r", metadata_errors="ignore")
    except Exception as e:  # PyAV raises many FFmpeg error types (InvalidDataError, EOFError, ...)
        f.close()
        raise VideoDecodeError(f"Cannot read video {path!r} (not a video or corrupt): {e}") from e
    if not container.streams.video:
        container.close()
        f.close()
        raise VideoDecodeError(f"Video {path!r} has no video stream.")
    return f, container


def _stream_info(path: str, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if fps <= 0:
        raise VideoDecodeError(f"Video {path!r} has no usable frame rate.")
    time_base = stream.time_base or Fraction(1, 1_000_000)
    start_pts = stream.start_time if stream.start_time is not None else 0
    n = int(stream.frames or 0)
    if n <= 0:
        # Containers like WebM/MKV do not store a frame count (stream.frames == 0): estimate it
        # from the duration. Durations are stored in whole ticks of the time base (WebM:
        # milliseconds), so 5 frames at 12 fps last 0.416 s = 4.99 frames: allow two ticks of
        # rounding before flooring (tests/data/test_decoder.py, VP9 WebM at 12 fps). A duration
        # that overestimates (an audio stream longer than the video) is corrected by
        # decode_clips' tail fallback.
        if stream.duration is not None:
            seconds = float(stream.duration * time_base)
        elif stream.container.duration is not None:
            seconds = stream.container.duration / av.time_base
        else:
            seconds = 0.0
        n = int(math.floor(seconds * fps + max(1e-3, 2 * float(time_base) * fps)))
    if n <= 0:
        raise VideoDecodeError(f"Video {path!r} is empty (no frames).")
    ctx = getattr(stream, "codec_context", None)
    return VideoInfo(
        num_frames=n, fps=fps, time_base=Fraction(time_base), start_pts=int(start_pts),
        width=int(getattr(ctx, "width", 0) or 0), height=int(getattr(ctx, "height", 0) or 0),
    )


def probe_video(path: str) -> VideoInfo:
    """Read the stream header of a video (no decoding).

    Raises:
        VideoDecodeError: the file is missing, unreadable or has no video stream.
    """
    f, container = _open(path)
    try:
        return _stream_info(path, container.streams.video[0])
    finally:
        container.close()
        f.close()


def _frame_index(frame, info: VideoInfo, previous: int, ticks_to_frames: float = 0.0) -> int:
    """Native index of a decoded frame from its timestamp.

    ``ticks_to_frames`` = ``time_base * fps`` as a float: the same rounding as the exact
    ``Fraction`` product, without its Python arithmetic (about 2 ms per sample otherwise).
    """
    if frame.pts is None:  # some AVI files: no timestamps; frames come in order
        return previous + 1
    if ticks_to_frames:
        return int(round((frame.pts - info.start_pts) * ticks_to_frames))
    seconds = float((frame.pts - info.start_pts) * info.time_base)
    return int(round(seconds * info.fps))


def _decode_frames(
    path: str, container, info: VideoInfo, wanted: Sequence[int], size: Optional[Tuple[int, int]] = None
) -> Tuple[Dict[int, np.ndarray], int]:
    """Decode the frames ``wanted`` (sorted unique native indices), scaled to ``size`` (H, W).

    Returns:
        ({index: (H, W, 3) uint8}, index of the last frame decoded).
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threading in the decoder; conversion is single-threaded below
    first, last = wanted[0], wanted[-1]
    wanted_set = set(wanted)
    ticks_to_frames = float(info.time_base) * info.fps
    out: Dict[int, np.ndarray] = {}

    def convert(frame) -> np.ndarray:
        # threads=1: see the module docstring (FFmpeg's 3x threading trap). With a size, swscale
        # scales in the same pass that converts YUV to RGB (cheaper than converting first).
        info.height, info.width = frame.height, frame.width  # the decoded size is the truth
        if size is not None and (frame.height, frame.width) != tuple(size):
            return frame.reformat(width=size[1], height=size[0], format="rgb24", threads=1).to_ndarray()
        return frame.reformat(format="rgb24", threads=1).to_ndarray()

    def run(seek_to: int) -> Tuple[int, int]:
        """Decode from ``seek_to``; return (index of the first decoded frame, last index)."""
        if seek_to > 0:
            pts = info.start_pts + int(seek_to / info.fps / info.time_base)
            container.seek(pts, stream=stream, backward=True, any_frame=False)
        first_seen, idx, prev, prev_idx = None, -1, None, -1
        for frame in container.decode(stream):
            if frame.pts is None and seek_to > 0:
                return -1, -1  # no timestamps: positions after a seek are unknown; caller restarts
            idx = _frame_index(frame, info, idx, ticks_to_frames)
            if first_seen is None:
                first_seen = idx
            if prev is not None and idx > prev_idx + 1:
                # A timestamp gap (variable frame rate, dropped frames): at the skipped times the
                # previous frame is on screen, so it stands for the wanted indices in the gap.
                lo, hi = bisect.bisect_right(wanted, prev_idx), bisect.bisect_left(wanted, idx)
                gap = [w for w in wanted[lo:hi] if w not in out]
                if gap:
                    arr = out.get(prev_idx)
                    arr = convert(prev) if arr is None else arr
                    for w in gap:
                        out[w] = arr
            if idx in wanted_set and idx not in out:
                out[idx] = convert(frame)
            if idx >= last:
                break
            prev, prev_idx = frame, idx
        return (first_seen if first_seen is not None else -1), idx

    last_seen = -1
    try:
        seek_to = first if first >= _SEEK_MIN_FRAME else 0
        first_seen, last_seen = run(seek_to)
        if seek_to > 0 and (first_seen < 0 or first_seen > first):
            # The seek overshot (inexact index or timestamps): decode from the start instead.
            container.seek(0, stream=stream, backward=True, any_frame=False)
            _, last_seen = run(0)
    except VideoDecodeError:
        raise
    except Exception as e:  # FFmpeg errors surface as many exception types
        if not out:
            raise VideoDecodeError(f"Error while decoding {path!r}: {e}") from e
        logger.debug("Decoding %s stopped early: %s", path, e)
    return out, last_seen


def decode_clips(
    path: str, clip_sampler, generator: torch.Generator = None, size: Optional[Tuple[int, int]] = None
) -> Tuple[List[torch.Tensor], VideoInfo]:
    """Open a video, choose the clips with ``clip_sampler`` and decode them in one pass.

    Args:
        path: local path or iopath URI.
        clip_sampler: ``clip_sampler(num_frames, fps, generator) -> List[(T,) LongTensor]`` of
            native frame indices (``ascnet/sampling/clip.py``).
        generator: drives the sampler's random choices.
        size: (H, W) to scale the frames to during the RGB conversion (default: their own size).

    Returns:
        (clips, info): ``clips`` is a list of (T, 3, H, W) uint8 tensors, one per clip, in the
        sampler's order; ``info`` describes the stream (its ``height`` / ``width`` are those of
        the decoded frames before any scaling).

    Raises:
        VideoDecodeError: missing/unreadable/truncated file, or frames that cannot be decoded.
        ascnet.sampling.clip.VideoTooShortError: the video is shorter than a clip (policy "fail").
    """
    state = generator.get_state() if generator is not None else None
    num_frames = None
    for attempt in range(2):
        f, container = _open(path)
        try:
            info = _stream_info(path, container.streams.video[0])
            if num_frames is not None:
                info.num_frames = num_frames
            clip_indices = clip_sampler(info.num_frames, info.fps, generator)
            wanted = sorted({int(i) for idx in clip_indices for i in idx.tolist()})
            frames, last_seen = _decode_frames(path, container, info, wanted, size)
        finally:
            container.close()
            f.close()
        missing = [i for i in wanted if i not in frames]
        if not missing:
            break
        # Headers often promise a few frames more than the stream holds (rounded durations,
        # an edit list). When only the tail is missing and at least 90% of the promised frames
        # decoded, sample again with the true length (same random draws), so the clips keep
        # their exact strides. Otherwise the file is truncated or corrupt.
        tail_only = last_seen >= 0 and min(missing) > last_seen
        if attempt == 0 and tail_only and last_seen + 1 >= 0.9 * info.num_frames:
            num_frames = last_seen + 1
            if state is not None:
                generator.set_state(state)
            continue
        raise VideoDecodeError(
            f"Video {path!r} is truncated or corrupt: frames {missing[:5]}{'...' if len(missing) > 5 else ''} "
            f"could not be decoded (decoded up to frame {last_seen} of {info.num_frames})."
        )
    # One (T, H, W, 3) stack per clip, then (T, 3, H, W) for torchvision.transforms.v2.
    clips = [
        torch.from_numpy(np.stack([frames[int(i)] for i in idx.tolist()])).permute(0, 3, 1, 2)
        for idx in clip_indices
    ]
    return clips, info


def decode_all(path: str) -> Tuple[torch.Tensor, VideoInfo]:
    """Decode every frame of a video (checks and tests): (T, 3, H, W) uint8 and its info.

    A decoding error after the first frame ends decoding early (the frames so far are returned;
    compare T with ``info.num_frames`` to detect a truncated file); before it, it raises
    :class:`VideoDecodeError`.
    """
    f, container = _open(path)
    try:
        info = _stream_info(path, container.streams.video[0])
        frames = []
        try:
            for frame in container.decode(container.streams.video[0]):
                frames.append(frame.reformat(format="rgb24", threads=1).to_ndarray())
        except Exception as e:
            if not frames:
                raise VideoDecodeError(f"Error while decoding {path!r}: {e}") from e
            # A truncated file: keep what decoded; callers compare with info.num_frames.
            logger.debug("Decoding %s stopped after %d frames: %s", path, len(frames), e)
    finally:
        container.close()
        f.close()
    if not frames:
        raise VideoDecodeError(f"Video {path!r} has no decodable frames.")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), info
