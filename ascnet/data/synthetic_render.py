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

By default no single frame reveals the class (content, colours, background and starting
position are drawn independently of it), and a clip at playback speed 2 of a "slow" video looks
faster than at speed 1. Real actions come with their own kinds of places and objects: with
``DATA.SYNTHETIC.CLASS_SCENE_PROB`` p > 0, a video shows its class's typical scene with
probability p (the class's background kind, object kind, background colours and orientation,
each moved a little per video; the object's shape, colour, size, position and motion stay per
video) and a scene drawn independently of the class otherwise, so that for those videos only
the motion tells the class. With p = 0 the frames are those of the versions before the key.
``DATA.SYNTHETIC.APPEARANCE: fixed`` gives every video the same object and background (drawn
from the seed), so that only the motion and its start tell videos apart.
Every class is invariant to a horizontal flip (directions are drawn both ways, and flipping a
diagonal gives the other diagonal), so the default ``AUG.FLIP_PROB`` can stay on (method.md
section 1, "Mind what an augmentation erases").

Presets (``DATA.SYNTHETIC.PRESET``) choose the classes. ``motion_types`` is the table above.
``direction_speed`` is a benchmark whose classes only motion tells and whose results say which
factor was learnt: 8 classes = 4 directions (right, left, down, up) x 2 speeds (slow 0.025,
fast 0.0625 frame widths per frame), a handwritten digit (per-video digit, tint, size, start and
background, never depending on the class) translating without turning back (it wraps around
the frame, so that every clip of a video shows one direction). Its classes tell left from right:
train on it with ``AUG.FLIP_PROB 0`` (method.md section 1).

The video files and their layout: :mod:`ascnet.data.synthetic`.
"""
import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["APPEARANCES", "MOTIONS", "PRESETS", "class_factors", "render_video"]

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
# DATA.SYNTHETIC.PRESET: the class names of each preset (class k is the k-th name).
DIRECTIONS = ("Right", "Left", "Down", "Up")
SPEEDS = ("Slow", "Fast")
PRESETS = {
    "motion_types": MOTIONS,
    "direction_speed": tuple(d + s for d in DIRECTIONS for s in SPEEDS),
}
# Factors of a preset's classes: name -> (value names, value of each class).
_FACTORS = {
    "direction_speed": {
        "direction": (DIRECTIONS, tuple(k // len(SPEEDS) for k in range(len(PRESETS["direction_speed"])))),
        "speed": (SPEEDS, tuple(k % len(SPEEDS) for k in range(len(PRESETS["direction_speed"])))),
    },
}
# Speeds of direction_speed in frame widths per frame (x2 in the -1..1 units of the renderer).
_DIRECTION_SPEEDS = {"Slow": 0.025, "Fast": 0.0625}

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


def _background(rng: np.random.Generator, size: int, scene: Optional[Dict] = None) -> torch.Tensor:
    """(3, size, size) float in 0..1: a gradient, stripes or smooth noise.

    ``scene`` (a class's typical scene, :func:`_class_scene`) fixes the kind and centres the two
    colours and the orientation on the class's; the per-video draws are made either way, so the
    rest of the random stream does not depend on it.
    """
    kind = rng.integers(3)
    c1, c2 = (torch.from_numpy(rng.random(3, dtype=np.float32)).view(3, 1, 1) for _ in range(2))
    angle = float(rng.uniform(0, math.pi))
    if scene is not None:
        kind = scene["background"]
        # The class's colours, moved by up to +-_CLASS_COLOUR_SPREAD / 2 per channel for this video.
        c1 = (scene["colours"][0] + _CLASS_COLOUR_SPREAD * (c1 - 0.5)).clamp(0, 1)
        c2 = (scene["colours"][1] + _CLASS_COLOUR_SPREAD * (c2 - 0.5)).clamp(0, 1)
        angle = scene["angle"] + 0.3 * (angle / math.pi - 0.5)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    proj = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == 0:  # gradient
        w = (proj + 1.5) / 3
    elif kind == 1:  # stripes
        w = 0.5 + 0.5 * torch.sin(proj * float(rng.uniform(3, 9)))
    else:  # smooth noise texture
        return 0.5 * _smooth_noise(rng, size, int(rng.integers(3, 8))) + 0.25 * c1
    return c1 * w + c2 * (1 - w)


def _class_scene(seed: int, class_id: int) -> Dict:
    """The typical scene of a class: background kind, object kind, two background colours and an
    orientation, drawn from (seed, class) so that each class has its own kind of place and object,
    as real actions do; neighbouring classes differ in both kinds."""
    rng = np.random.default_rng([int(seed), int(class_id), 0xC1A55])
    background, obj = _CLASS_KINDS[class_id % len(_CLASS_KINDS)]
    colours = [torch.from_numpy(rng.random(3, dtype=np.float32)).view(3, 1, 1) for _ in range(2)]
    return {"background": background, "object": obj, "colours": colours, "angle": float(rng.uniform(0, math.pi))}


def _contrasting_colour(rng: np.random.Generator, background_luma: float) -> torch.Tensor:
    """A random colour whose luma differs from the background's by at least 0.3 (visible object)."""
    for _ in range(20):
        c = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        if abs(float(c @ _LUMA) - background_luma) >= 0.3:
            break
    else:  # a mid-grey background can make this rare: go to the far end of the luma range
        c = np.full(3, 1.0 if background_luma < 0.5 else 0.0, np.float32)
    return torch.from_numpy(c).view(3, 1, 1)


# (background kind, object kind) of each class's typical scene; neighbouring classes differ in both.
_CLASS_KINDS = [(b, o) for o in range(3) for b in range(3)]
_CLASS_KINDS = _CLASS_KINDS[::2] + _CLASS_KINDS[1::2]
_CLASS_COLOUR_SPREAD = 0.2

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _object(rng: np.random.Generator, background_luma: float, res: int = 32, kind: Optional[int] = None) -> torch.Tensor:
    """(4, res, res) RGBA float: a digit, a shape or a texture patch (``kind`` 0, 1, 2; drawn unless
    given), contrasting with the background."""
    drawn = rng.integers(3)  # always drawn, so that the rest of the stream does not depend on ``kind``
    kind = drawn if kind is None else kind
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


def class_factors(preset: str, num_classes: int) -> Dict[str, Tuple[Tuple[str, ...], Tuple[int, ...]]]:
    """The factors that make up the first ``num_classes`` classes of a preset.

    Returns:
        ``{factor: (value names, value index of each class)}``; empty when the preset's classes
        are not built from factors (``motion_types``).
    """
    return {k: (names, values[:num_classes]) for k, (names, values) in _FACTORS.get(preset, {}).items()}


def _direction_speed_layer(name: str, rng: np.random.Generator, obj: torch.Tensor, radius: float,
                           num_frames: int, size: int) -> torch.Tensor:
    """(T, 4, S, S) RGBA layer of ``obj`` translating in the direction and at the speed of class
    ``name``, wrapping around the frame (a second copy enters on the far side as it leaves)."""
    direction = DIRECTIONS.index(name[: -len("Slow") if name.endswith("Slow") else -len("Fast")])
    v = 2 * _DIRECTION_SPEEDS[name[-4:]]  # x2: the frame is 2 units wide
    start, across = rng.uniform(-1, 1), rng.uniform(-0.5, 0.5)
    sign = 1.0 if direction in (0, 2) else -1.0  # right / down: increasing x / y
    along = np.mod(start + sign * v * np.arange(num_frames) + 1, 2) - 1  # in [-1, 1)
    layers = 0
    for shift in (0.0, np.where(along > 0, -2.0, 2.0)):  # the frame and its wrapped-around copy
        p = along + shift
        c = np.stack([p, np.full(num_frames, across)] if direction < 2 else [np.full(num_frames, across), p], 1)
        c = torch.tensor(c, dtype=torch.float32)
        theta = torch.cat([torch.eye(2).expand(num_frames, 2, 2) / radius, -c[:, :, None] / radius], dim=2)
        grid = F.affine_grid(theta, [num_frames, 4, size, size], align_corners=False)
        layers = layers + F.grid_sample(obj.expand(num_frames, -1, -1, -1), grid, align_corners=False)
    return layers.clamp(0, 1)


def render_video(
    class_id: int, seed: int, index: int, num_frames: int = 48, size: int = 64, appearance: str = "random",
    class_scene_prob: float = 0.0, preset: str = "motion_types",
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
        class_scene_prob: with "random", the probability that the video shows its class's
            typical scene (:func:`_class_scene`); 0 gives the frames of the versions before it.
        preset: the classes (:data:`PRESETS`); ``motion_types`` renders as before the key.

    Returns:
        (T, S, S, 3) uint8 RGB frames; a function of the arguments only.
    """
    if preset != "motion_types":
        return _render_direction_speed(class_id, seed, index, num_frames, size, appearance)
    rng = np.random.default_rng([int(seed), int(class_id), int(index)])
    # "fixed": the appearance comes from a stream of its own that depends on the seed only.
    app_rng = np.random.default_rng([int(seed), 0xF1ED]) if appearance == "fixed" else rng
    scene = None
    if appearance == "random" and class_scene_prob > 0:
        if np.random.default_rng([int(seed), int(class_id), int(index), 0x5CE7E]).random() < class_scene_prob:
            scene = _class_scene(seed, class_id)
    bg = _background(app_rng, size, scene)
    luma = float((bg.mean(dim=(1, 2)).numpy() * _LUMA).sum())
    obj = _object(app_rng, luma, kind=None if scene is None else scene["object"])
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


def _render_direction_speed(class_id: int, seed: int, index: int, num_frames: int, size: int, appearance: str) -> np.ndarray:
    """Frames of a ``direction_speed`` video: a tinted digit over a background, both drawn per
    video from a stream that does not depend on the class (so no frame tells the class)."""
    name = PRESETS["direction_speed"][class_id]
    # Appearance and motion from streams of their own; the appearance's distribution is the same
    # for every class.
    app_rng = np.random.default_rng([int(seed), 0xF1ED] if appearance == "fixed" else [int(seed), int(class_id), int(index), 0xD161])
    rng = np.random.default_rng([int(seed), int(class_id), int(index), 0xD1])
    bg = _background(app_rng, size)
    luma = float((bg.mean(dim=(1, 2)).numpy() * _LUMA).sum())
    obj = _object(app_rng, luma, kind=0)
    radius = float(app_rng.uniform(0.3, 0.45))
    layer = _direction_speed_layer(name, rng, obj, radius, num_frames, size)
    frames = bg[None] * (1 - layer[:, 3:4]) + layer[:, :3]
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
