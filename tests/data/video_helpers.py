"""Helpers of the data tests: tiny real video files whose frames encode their own index."""
import os

import numpy as np

from ascnet.config import get_cfg
from ascnet.data.synthetic import write_video

BITS = 8


def index_frames(n: int, size: int = 64, offset: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 frames; frame i shows i + offset as 8 black/white stripes."""
    stripe = size // BITS
    out = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        v = i + offset
        for b in range(BITS):
            if (v >> b) & 1:
                out[i, :, b * stripe : (b + 1) * stripe] = 255
    return out


def read_index(frame: np.ndarray) -> int:
    """Recover the index of a (H, W, 3) or (3, H, W) frame written by ``index_frames``."""
    if frame.shape[0] == 3:
        frame = frame.transpose(1, 2, 0)
    stripe = frame.shape[1] // BITS
    bits = [frame[:, b * stripe + 1 : (b + 1) * stripe - 1].mean() > 127 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def write_index_video(path: str, n: int, size: int = 64, fps: int = 25, offset: int = 0) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path, index_frames(n, size, offset), fps=fps)
    return path


def tiny_cfg(root: str = "", **overrides):
    """Defaults shrunk for tests: 8 frames, 64 px, no workers, native frame rate."""
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = root
    cfg.DATA.NUM_FRAMES = 8
    cfg.DATA.CROP_SIZE = 56
    cfg.DATA.TEST_CROP_SIZE = 56
    cfg.DATA.TARGET_FPS = 0
    cfg.DATA_LOADER.NUM_WORKERS = 0
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 2
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    for k, v in overrides.items():
        node = cfg
        parts = k.split("__")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = v
    return cfg


def augmented(ds, sample):
    """A sample's clips as the model sees them: float, augmented and normalised.

    With ``AUG.DEVICE device`` (the default) the dataset returns uint8 clips and parameters and
    the trainer / evaluation applies them; this runs the same step on the CPU.
    """
    from ascnet.data.batch_augment import augment_batch

    return augment_batch(sample, ds.augment)["clips"]


def write_webm(path: str, n: int, size: int = 32, fps: int = 12, offset: int = 0) -> str:
    """A VP9 WebM of ``n`` index-encoded frames (Something-Something v2's format: no frame count)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path, index_frames(n, size, offset), fps=fps, codec="libvpx-vp9", options={})
    return path
