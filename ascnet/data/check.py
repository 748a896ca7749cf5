"""Checking one video file for tools/check_dataset.py (importable, so worker processes can run it)."""
from typing import Any, Dict, Optional

from ascnet.sampling.clip import resampled_length

from .decoder import VideoDecodeError, decode_all, probe_video


def check_video(path: str, needed: int, target_fps: float, probe_only: bool = False) -> Optional[Dict[str, Any]]:
    """None when the video is fine, else ``{"path", "reason", ...}``.

    Args:
        path: the video.
        needed: resampled frames the longest clip needs (``(NUM_FRAMES - 1) * stride + 1``);
            0 skips the length check.
        target_fps: DATA.TARGET_FPS (0 = native).
        probe_only: read the header only.
    """
    try:
        if probe_only:
            info = probe_video(path)
            decoded = info.num_frames
        else:
            frames, info = decode_all(path)
            decoded = int(frames.shape[0])
            # Same rule as the decoder: a header may promise a few frames too many (the loader
            # then uses the true length); fewer than 90% of them decodable means truncated.
            if decoded < 0.9 * info.num_frames:
                return {"path": path, "reason": "truncated", "frames": decoded, "header_frames": info.num_frames}
    except VideoDecodeError as e:
        return {"path": path, "reason": "unreadable", "error": str(e)}
    length = resampled_length(decoded, info.fps, target_fps)
    if needed and length < needed:
        return {"path": path, "reason": "too_short", "frames": length, "needed": needed, "fps": info.fps}
    return None
