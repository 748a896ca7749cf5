"""The generated dataset: real video files whose class is a kind of MOTION.

Each video shows one moving object (a handwritten digit from scikit-learn's ``load_digits``
scaled up, a geometric shape, or a noise texture patch; random colour) over a random static
background (colour gradient, stripes or smooth noise). Its class is how the object moves:

=================  =========================================================================
HorizontalSlow     left-right translation, bouncing at the borders, 0.03 frame widths/frame
HorizontalFast     the same at 3x the speed
VerticalSlow       up-down translation, slow
VerticalFast       up-down translation, fast
Rotation           spinning in place (clockwise or counter-clockwise)
Zoom               growing and shrinking periodically
Orbit              circling around a point (either direction)
Diagonal           translation along one of the two diagonals, bouncing
HorizontalShake    fast small left-right oscillation
VerticalShake      fast small up-down oscillation
=================  =========================================================================

No single frame reveals the class (content, colours, background and starting position are
drawn independently of it), and a clip at playback speed 2 of a "slow" video looks faster than
at speed 1. ``DATA.SYNTHETIC.APPEARANCE: fixed`` gives every video the same object and
background (drawn from the seed), so that only the motion and its start tell videos apart.
Every class is invariant to a horizontal flip (directions are drawn both ways, and flipping a
diagonal gives the other diagonal), so the default ``AUG.FLIP_PROB`` can stay on (method.md
section 1, "Mind what an augmentation erases").

Files are written with PyAV in the UCF-101 layout (``ascnet/data/datasets/ucf101.py``):
``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` plus ``ucfTrainTestlist/`` with classInd and three
train/test splits by group (like UCF-101, a group never straddles train and test). ``.avi``
files are MPEG-4 part 2 (like the real UCF-101), ``.mp4`` files H.264. Everything is
deterministic from the seed: the same seed gives identical decoded frames.

Generation is guarded (:func:`ensure_synthetic_dataset`): an exclusive ``flock`` on
``<root>/.generate.lock`` lets one process write while others wait, and the marker file
``<root>/.ascnet_synthetic.json`` (written last, atomically) is the only proof of a complete
dataset, so a half-written tree is regenerated, never used.
"""
import fcntl
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import av
import numpy as np
import torch
import torch.nn.functional as F

from ascnet.utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

MARKER = ".ascnet_synthetic.json"
# Bumped when the generator's output changes: a dataset of another version is not reused.
GENERATOR_VERSION = 2
LOCK = ".generate.lock"
FORMATS = {".avi": ("mpeg4", {}), ".mp4": ("libx264", {"crf": "18", "preset": "veryfast"})}
# MPEG-4 part 2 is rate-controlled: 4 bits per pixel reaches its best quality on these videos
# (PSNR ~32 dB at 64 px, limited by 4:2:0 chroma); the default 200 kb/s gives ~26 dB.
MPEG4_BITS_PER_PIXEL = 4
APPEARANCES = ("random", "fixed")
MOTIONS = (
    "HorizontalSlow",
    "HorizontalFast",
    "VerticalSlow",
    "VerticalFast",
    "Rotation",
    "Zoom",
    "Orbit",
    "Diagonal",
    "HorizontalShake",
    "VerticalShake",
)
# UCF-101 has 25 groups per class; split k tests about a third of the groups.
MAX_GROUPS = 25


@dataclass
class SyntheticSpec:
    """Parameters of a generated dataset (``DATA.SYNTHETIC.*``); stored in the marker file."""

    num_classes: int = 8
    videos_per_class: int = 20
    num_frames: int = 48
    size: int = 64
    fps: int = 25
    seed: int = 0
    format: str = ".avi"
    # "random": object and background drawn per video (the default); "fixed": one object and
    # one background (drawn from the seed) shared by every video of the dataset.
    appearance: str = "random"

    def check(self) -> None:
        """Raise ValueError naming the ``DATA.SYNTHETIC`` key of an impossible value."""
        if not 1 <= self.num_classes <= len(MOTIONS):
            raise ValueError(f"DATA.SYNTHETIC.NUM_CLASSES must be in [1, {len(MOTIONS)}], got {self.num_classes}.")
        if self.videos_per_class < 3:
            raise ValueError("DATA.SYNTHETIC.VIDEOS_PER_CLASS must be >= 3 (three train/test splits).")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"DATA.SYNTHETIC.SIZE must be an even number >= 16 (H.264 needs even sizes), got {self.size}.")
        if self.num_frames < 2 or self.fps < 1:
            raise ValueError("DATA.SYNTHETIC.NUM_FRAMES must be >= 2 and DATA.SYNTHETIC.FPS >= 1.")
        if self.appearance not in APPEARANCES:
            raise ValueError(f"DATA.SYNTHETIC.APPEARANCE is {self.appearance!r}; choose one of {list(APPEARANCES)}.")
        if self.format not in FORMATS:
            raise ValueError(f"DATA.SYNTHETIC.FORMAT is {self.format!r}; choose one of {sorted(FORMATS)}.")

    @classmethod
    def from_cfg(cls, cfg) -> "SyntheticSpec":
        s = cfg.DATA.SYNTHETIC
        return cls(
            num_classes=int(s.NUM_CLASSES),
            videos_per_class=int(s.VIDEOS_PER_CLASS),
            num_frames=int(s.NUM_FRAMES),
            size=int(s.SIZE),
            fps=int(s.FPS),
            seed=int(s.SEED),
            format=str(s.get("FORMAT", ".avi")),
            appearance=str(s.get("APPEARANCE", "random")),
        )

    def marker(self) -> dict:
        """The marker file's content. ``appearance`` is left out at its default, so datasets
        written before the key existed stay valid."""
        out = dict(asdict(self), generator_version=GENERATOR_VERSION)
        if out["appearance"] == "random":
            del out["appearance"]
        return out


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------
_DIGITS: Optional[np.ndarray] = None


def _digits() -> np.ndarray:
    global _DIGITS
    if _DIGITS is None:
        try:
            from sklearn.datasets import load_digits  # bundled with scikit-learn, no download
        except ImportError as e:
            raise ImportError(
                "The generated dataset draws handwritten digits from scikit-learn: pip install scikit-learn"
            ) from e

        _DIGITS = (load_digits().images / 16.0).astype(np.float32)  # (1797, 8, 8) in 0..1
    return _DIGITS


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> torch.Tensor:
    low = torch.from_numpy(rng.random((1, 3, cells, cells), dtype=np.float32))
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)[0]


def _background(rng: np.random.Generator, size: int) -> torch.Tensor:
    """(3, size, size) float in 0..1."""
    kind = rng.integers(3)
    c1, c2 = (torch.from_numpy(rng.random(3, dtype=np.float32)).view(3, 1, 1) for _ in range(2))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    angle = float(rng.uniform(0, math.pi))
    proj = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == 0:  # gradient
        w = (proj + 1.5) / 3
    elif kind == 1:  # stripes
        w = 0.5 + 0.5 * torch.sin(proj * float(rng.uniform(3, 9)))
    else:  # smooth noise texture
        return 0.5 * _smooth_noise(rng, size, int(rng.integers(3, 8))) + 0.25 * c1
    return c1 * w + c2 * (1 - w)


def _contrasting_colour(rng: np.random.Generator, background_luma: float) -> torch.Tensor:
    """A random colour whose luma differs from the background's by at least 0.3 (visible object)."""
    for _ in range(20):
        c = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        if abs(float(c @ _LUMA) - background_luma) >= 0.3:
            break
    else:  # a mid-grey background can make this rare: go to the far end of the luma range
        c = np.full(3, 1.0 if background_luma < 0.5 else 0.0, np.float32)
    return torch.from_numpy(c).view(3, 1, 1)


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _object(rng: np.random.Generator, background_luma: float, res: int = 32) -> torch.Tensor:
    """(4, res, res) RGBA float: a digit, a shape or a texture patch, contrasting with the background."""
    kind = rng.integers(3)
    colour = _contrasting_colour(rng, background_luma)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing="ij")
    if kind == 0:
        d = torch.from_numpy(_digits()[rng.integers(len(_digits()))])[None, None]
        alpha = F.interpolate(d, size=(res, res), mode="bilinear", align_corners=False)[0, 0]
        rgb = colour.expand(3, res, res)
    elif kind == 1:
        shape = rng.integers(4)
        if shape == 0:  # disk
            alpha = (xx**2 + yy**2 <= 0.8).float()
        elif shape == 1:  # square
            alpha = ((xx.abs() <= 0.75) & (yy.abs() <= 0.75)).float()
        elif shape == 2:  # triangle
            alpha = ((yy <= 0.8) & (yy >= 2 * xx.abs() - 1.0)).float()
        else:  # ring
            r2 = xx**2 + yy**2
            alpha = ((r2 <= 0.85) & (r2 >= 0.3)).float()
        # A second colour on one half keeps rotation visible on symmetric shapes.
        other = _contrasting_colour(rng, background_luma)
        rgb = torch.where(xx > 0, colour, other).expand(3, res, res)
    else:
        alpha = ((xx.abs() <= 0.8) & (yy.abs() <= 0.8)).float()
        # A texture in the contrasting colour's luma range.
        rgb = 0.4 * _smooth_noise(rng, res, int(rng.integers(2, 6))) + 0.6 * colour
    return torch.cat([rgb * alpha, alpha[None]])


def _bounce(p: np.ndarray, a: float) -> np.ndarray:
    """Reflect positions into [-a, a] (a triangle wave)."""
    x = np.mod(p + a, 4 * a)
    return np.where(x > 2 * a, 4 * a - x, x) - a


def _trajectory(motion: str, rng: np.random.Generator, t: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-frame centre (cx, cy in -1..1), rotation angle (rad) and scale of the object."""
    n = len(t)
    sign = rng.choice([-1.0, 1.0])
    cx0, cy0 = rng.uniform(-0.5, 0.5, 2)
    cx, cy = np.full(n, cx0), np.full(n, cy0)
    angle = np.full(n, rng.uniform(-0.3, 0.3))
    scale = np.ones(n)
    phase = rng.uniform(0, 2 * math.pi)
    if motion in ("HorizontalSlow", "HorizontalFast", "VerticalSlow", "VerticalFast"):
        v = (0.03 if motion.endswith("Slow") else 0.09) * 2 * sign  # x2: frame width = 2 units
        moving = _bounce(rng.uniform(-0.6, 0.6) + v * t, 0.6)
        if motion.startswith("Horizontal"):
            cx = moving
        else:
            cy = moving
    elif motion == "Rotation":
        angle = angle + sign * rng.uniform(0.15, 0.25) * t
    elif motion == "Zoom":
        scale = 1.0 + 0.45 * np.sin(2 * math.pi * t / rng.uniform(14, 20) + phase)
    elif motion == "Orbit":
        w = sign * rng.uniform(0.15, 0.22)
        cx = 0.35 * np.cos(w * t + phase) + cx0 * 0.3
        cy = 0.35 * np.sin(w * t + phase) + cy0 * 0.3
    elif motion == "Diagonal":
        v = 0.1 * sign
        d = rng.choice([-1.0, 1.0])
        cx = _bounce(cx0 + v * t, 0.6)
        cy = _bounce(cy0 + d * v * t, 0.6)
    elif motion == "HorizontalShake":
        cx = cx0 + 0.2 * np.sin(2 * math.pi * t / 6 + phase)
    elif motion == "VerticalShake":
        cy = cy0 + 0.2 * np.sin(2 * math.pi * t / 6 + phase)
    else:
        raise ValueError(f"Unknown motion {motion!r}; known: {list(MOTIONS)}.")
    return {"cx": cx, "cy": cy, "angle": angle, "scale": scale}


def render_video(
    class_id: int, seed: int, index: int, num_frames: int = 48, size: int = 64, appearance: str = "random"
) -> np.ndarray:
    """Frames of one generated video.

    Args:
        class_id: index into :data:`MOTIONS`.
        seed: dataset seed.
        index: video number within its class.
        num_frames: frames T.
        size: height = width S.
        appearance: "random" (object, background and object size drawn per video) or "fixed"
            (the same for every video of the seed; the trajectory is still drawn per video).

    Returns:
        (T, S, S, 3) uint8 RGB frames; a function of the arguments only.
    """
    rng = np.random.default_rng([int(seed), int(class_id), int(index)])
    # "fixed": the appearance comes from a stream of its own that depends on the seed only.
    app_rng = np.random.default_rng([int(seed), 0xF1ED]) if appearance == "fixed" else rng
    bg = _background(app_rng, size)
    obj = _object(app_rng, float((bg.mean(dim=(1, 2)).numpy() * _LUMA).sum()))
    traj = _trajectory(MOTIONS[class_id], rng, np.arange(num_frames, dtype=np.float64))
    radius = float(app_rng.uniform(0.25, 0.4))  # object half-size in frame units (frame = 2)
    # Inverse affine map (output -> object coordinates) for grid_sample, all frames at once.
    r = torch.tensor(radius * traj["scale"], dtype=torch.float32)
    a = torch.tensor(traj["angle"], dtype=torch.float32)
    c = torch.tensor(np.stack([traj["cx"], traj["cy"]], 1), dtype=torch.float32)
    cos, sin = torch.cos(a) / r, torch.sin(a) / r
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (T, 2, 2)
    theta = torch.cat([rot, -(rot @ c[:, :, None])], dim=2)
    grid = F.affine_grid(theta, [num_frames, 4, size, size], align_corners=False)
    layer = F.grid_sample(obj.expand(num_frames, -1, -1, -1), grid, align_corners=False)
    alpha = layer[:, 3:4]
    frames = bg[None] * (1 - alpha) + layer[:, :3]
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_video(path: str, frames: np.ndarray, fps: int = 25, codec: Optional[str] = None, options=None) -> None:
    """Write (T, H, W, 3) uint8 frames with PyAV (local path).

    The codec defaults from the extension: ``.avi`` -> MPEG-4 part 2, ``.mp4`` -> H.264.
    H.264 (yuv420p) needs even H and W.
    """
    ext = os.path.splitext(path)[1].lower()
    default_codec, default_opts = FORMATS.get(ext, ("mpeg4", {}))
    codec = codec or default_codec
    options = dict(default_opts if options is None else options)
    _, h, w, _ = frames.shape
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=int(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = MPEG4_BITS_PER_PIXEL * w * h * int(fps)
        stream.thread_count = 1  # single-threaded encoders write identical bytes every run
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def video_name(class_name: str, index: int, groups: int) -> str:
    """UCF-style file stem ``v_<Class>_gXX_cYY`` of video ``index`` of a class."""
    return f"v_{class_name}_g{index % groups + 1:02d}_c{index // groups + 1:02d}"


def _test_groups(split_id: int, groups: int) -> List[int]:
    return [g for g in range(1, groups + 1) if (g - 1) * 3 // groups == split_id - 1]


def generate_synthetic_dataset(root: str, spec: SyntheticSpec, progress: bool = True) -> None:
    """Write the dataset of ``spec`` under the local folder ``root`` (UCF-101 layout).

    Does not take the lock or write the marker: use :func:`ensure_synthetic_dataset`.
    """
    from tqdm import tqdm

    spec.check()
    classes = list(MOTIONS[: spec.num_classes])
    groups = min(spec.videos_per_class, MAX_GROUPS)
    list_dir = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(list_dir, exist_ok=True)
    entries = []  # (relative path, class number, group)
    jobs = [(c, i) for c in range(spec.num_classes) for i in range(spec.videos_per_class)]
    # One torch thread: the tensors are tiny, and on a busy machine intra-op threads make
    # rendering up to 50x slower (measured: 6 ms -> 270 ms per video at load 10 on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for c, i in tqdm(jobs, desc=f"Generating videos in {root}", disable=not progress, unit="video"):
            name = classes[c]
            rel = f"{name}/{video_name(name, i, groups)}{spec.format}"
            out = os.path.join(root, "UCF-101", rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            write_video(out, render_video(c, spec.seed, i, spec.num_frames, spec.size, spec.appearance), fps=spec.fps)
            entries.append((rel, c + 1, i % groups + 1))
    finally:
        torch.set_num_threads(threads)
    with open(os.path.join(list_dir, "classInd.txt"), "w") as f:
        f.writelines(f"{k + 1} {n}\n" for k, n in enumerate(classes))
    for sid in (1, 2, 3):
        test = set(_test_groups(sid, groups))
        with open(os.path.join(list_dir, f"trainlist0{sid}.txt"), "w") as f:
            f.writelines(f"{rel} {num}\n" for rel, num, g in entries if g not in test)
        with open(os.path.join(list_dir, f"testlist0{sid}.txt"), "w") as f:
            f.writelines(f"{rel}\n" for rel, num, g in entries if g in test)


def _read_marker(root: str) -> Optional[dict]:
    path = os.path.join(root, MARKER)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ensure_synthetic_dataset(
    root: str, spec: SyntheticSpec, auto_generate: bool = True, progress: bool = True
) -> bool:
    """Make sure a complete generated dataset of ``spec`` exists under ``root``.

    Returns True when this call generated it. Safe against concurrent callers (one writes,
    the others wait on the lock, then see the marker).

    Raises:
        FileNotFoundError: missing and ``auto_generate`` is False.
        ValueError: the folder holds a dataset generated with other parameters.
    """
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"The generated dataset must live on a local path; DATA.PATH_TO_DATA_DIR is {root!r}.")
    root = root[len("file://") :] if root.startswith("file://") else root
    spec.check()

    def check(marker: dict) -> None:
        if marker != spec.marker():
            raise ValueError(
                f"{root!r} holds a generated dataset with other parameters ({marker}) than "
                f"DATA.SYNTHETIC ({asdict(spec)}, generator version {GENERATOR_VERSION}). Point DATA.PATH_TO_DATA_DIR to another folder "
                "or delete this one."
            )

    marker = _read_marker(root)
    if marker is not None:
        check(marker)
        return False
    if not auto_generate:
        raise FileNotFoundError(
            f"No generated dataset under {root!r}. Run tools/make_synthetic_dataset.py or set "
            "DATA.SYNTHETIC.AUTO_GENERATE True."
        )
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, LOCK), "w") as lock:
        # flock is released by the OS if this process dies, so a crash never leaves a stale lock.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            marker = _read_marker(root)  # another process may have finished while we waited
            if marker is not None:
                check(marker)
                return False
            logger.info("Generating the synthetic dataset under %s (%s)", root, asdict(spec))
            generate_synthetic_dataset(root, spec, progress=progress)
            content = spec.marker()
            atomic_write_bytes(os.path.join(root, MARKER), json.dumps(content, indent=1).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return True
