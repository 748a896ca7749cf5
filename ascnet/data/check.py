"""Checking one video file for tools/check_dataset.py (importable, so worker processes can run it)."""
from typing import Any, Dict, Optional

from iopath.common.file_io import g_pathmgr

from ascnet.sampling.clip import resampled_length

from .decoder import VideoDecodeError, decode_all, probe_video


def check_video(
    path: str, needed: int, target_fps: float, probe_only: bool = False, min_size: int = 0
) -> Optional[Dict[str, Any]]:
    """None when the video is fine, else ``{"path", "reason", ...}``.

    Reasons: ``missing`` (no such file), ``unreadable``, ``truncated`` (far fewer frames decode
    than the header promises), ``too_small`` (frames smaller than ``min_size`` on a side),
    ``too_short``.

    Args:
        path: the video.
        needed: resampled frames the longest clip needs (``(NUM_FRAMES - 1) * stride + 1``);
            0 skips the length check.
        target_fps: DATA.TARGET_FPS (0 = native).
        probe_only: read the header only.
        min_size: smallest frame side accepted (the crop size); 0 skips the check.
    """
    if not g_pathmgr.exists(path):
        return {"path": path, "reason": "missing"}
    try:
        if probe_only:
            info = probe_video(path)
            decoded = info.num_frames
            width, height = info.width, info.height
        else:
            frames, info = decode_all(path)
            decoded = int(frames.shape[0])
            height, width = int(frames.shape[-2]), int(frames.shape[-1])
            # Same rule as the decoder: a header may promise a few frames too many (the loader
            # then uses the true length); fewer than 90% of them decodable means truncated.
            if decoded < 0.9 * info.num_frames:
                return {"path": path, "reason": "truncated", "frames": decoded, "header_frames": info.num_frames}
    except VideoDecodeError as e:
        return {"path": path, "reason": "unreadable", "error": str(e)}
    if min_size and 0 < min(width, height) < min_size:
        return {"path": path, "reason": "too_small", "width": width, "height": height, "min_size": min_size}
    length = resampled_length(decoded, info.fps, target_fps)
    if needed and length < needed:
        return {"path": path, "reason": "too_short", "frames": length, "needed": needed, "fps": info.fps}
    return None
