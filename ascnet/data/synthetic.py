"""The generated dataset: its parameters, the video writer and the UCF-101 layout on disk.

What a video shows (the classes are motions) is rendered by :mod:`ascnet.data.synthetic_render`.
Files are written with PyAV in the UCF-101 layout (``ascnet/data/datasets/ucf101.py``):
``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` plus ``ucfTrainTestlist/`` with classInd and three
train/test splits by group (like UCF-101, a group never straddles train and test). ``.avi``
files are MPEG-4 part 2 (like the real UCF-101), ``.mp4`` files H.264. Everything is
deterministic from the seed: the same seed gives identical decoded frames.

Generation is guarded (:func:`ensure_synthetic_dataset`): an exclusive ``flock`` on
``<root>/.generate.lock`` lets one process write while others wait, and the marker file
``<root>/.ascnet_synthetic.json`` (written last, atomically) is the only proof of a complete
dataset, so a half-written tree is regenerated, never used. The generator writes only into a
missing or empty folder, or one it has claimed before (its marker or its lock file): a folder
holding anything else (a real dataset, say) is refused, never written into.
"""
import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import List, Optional

import av
import numpy as np
import torch

from ascnet.utils.io import atomic_write_bytes

from .synthetic_render import APPEARANCES, MOTIONS, PRESETS, class_factors, render_video  # noqa: F401  (re-exported)
from .utils import AnnotationError

logger = logging.getLogger(__name__)

MARKER = ".ascnet_synthetic.json"
# Bumped when the generator's output changes: a dataset of another version is not reused.
GENERATOR_VERSION = 2
LOCK = ".generate.lock"
FORMATS = {".avi": ("mpeg4", {}), ".mp4": ("libx264", {"crf": "18", "preset": "veryfast"})}
# MPEG-4 part 2 is rate-controlled: 4 bits per pixel reaches its best quality on these videos
# (PSNR ~32 dB at 64 px, limited by 4:2:0 chroma); the default 200 kb/s gives ~26 dB.
MPEG4_BITS_PER_PIXEL = 4
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
    # With "random": the probability that a video's scene (background kind, colours and
    # orientation, object kind) is its class's typical one rather than drawn independently of
    # the class (0: independent).
    class_scene_prob: float = 0.0
    # The classes (synthetic_render.PRESETS): "motion_types" (10 kinds of motion) or
    # "direction_speed" (4 directions x 2 speeds of a moving digit).
    preset: str = "motion_types"

    @property
    def classes(self) -> List[str]:
        """The class names, in class-number order."""
        return list(PRESETS[self.preset][: self.num_classes])

    def check(self) -> None:
        """Raise ValueError naming the ``DATA.SYNTHETIC`` key of an impossible value."""
        if self.preset not in PRESETS:
            raise ValueError(f"DATA.SYNTHETIC.PRESET is {self.preset!r}; choose one of {list(PRESETS)}.")
        n = len(PRESETS[self.preset])
        if not 1 <= self.num_classes <= n:
            raise ValueError(f"DATA.SYNTHETIC.NUM_CLASSES must be in [1, {n}] for PRESET {self.preset}, got {self.num_classes}.")
        if self.preset != "motion_types" and self.class_scene_prob:
            raise ValueError(f"DATA.SYNTHETIC.CLASS_SCENE_PROB applies to PRESET motion_types only; set it to 0 "
                             f"with PRESET {self.preset} (its appearance never depends on the class).")
        if self.videos_per_class < 3:
            raise ValueError("DATA.SYNTHETIC.VIDEOS_PER_CLASS must be >= 3 (three train/test splits).")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"DATA.SYNTHETIC.SIZE must be an even number >= 16 (H.264 needs even sizes), got {self.size}.")
        if self.num_frames < 2 or self.fps < 1:
            raise ValueError("DATA.SYNTHETIC.NUM_FRAMES must be >= 2 and DATA.SYNTHETIC.FPS >= 1.")
        if self.appearance not in APPEARANCES:
            raise ValueError(f"DATA.SYNTHETIC.APPEARANCE is {self.appearance!r}; choose one of {list(APPEARANCES)}.")
        if not 0.0 <= self.class_scene_prob <= 1.0:
            raise ValueError(f"DATA.SYNTHETIC.CLASS_SCENE_PROB must be in [0, 1], got {self.class_scene_prob}.")
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
            class_scene_prob=float(s.get("CLASS_SCENE_PROB", 0.0)),
            preset=str(s.get("PRESET", "motion_types")),
        )

    def marker(self) -> dict:
        """The marker file's content. ``appearance``, ``class_scene_prob`` and ``preset`` are left out
        at their defaults, so datasets written before the keys existed stay valid."""
        out = dict(asdict(self), generator_version=GENERATOR_VERSION)
        if out["appearance"] == "random":
            del out["appearance"]
        if out["class_scene_prob"] == 0.0:
            del out["class_scene_prob"]
        if out["preset"] == "motion_types":
            del out["preset"]
        return out


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
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
    classes = spec.classes
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
            write_video(out, render_video(
                c, spec.seed, i, spec.num_frames, spec.size, spec.appearance, spec.class_scene_prob, spec.preset), fps=spec.fps)
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


def check_generator_folder(root: str) -> None:
    """Refuse to generate into ``root`` unless it is missing, empty or already the generator's.

    The generator's own files are its marker and its lock file (created before the first video,
    so a half-written tree is the generator's too). Anything else means the folder holds other
    data, which generation would overwrite (``ucfTrainTestlist/``, class folders).

    Raises:
        AnnotationError: ``root`` holds files the generator did not write.
    """
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise AnnotationError(f"{root!r} is a file, not a folder: point DATA.PATH_TO_DATA_DIR to a folder for the generated dataset.")
        return
    entries = set(os.listdir(root))
    if entries and not entries & {MARKER, LOCK}:
        raise AnnotationError(
            f"{root!r} holds other data ({len(entries)} entries, e.g. {sorted(entries)[0]!r}) and no generated "
            "dataset: the generator writes only into an empty folder. Point DATA.PATH_TO_DATA_DIR of the "
            "Synthetic dataset (e.g. TEST.DATASET) to another folder, or set the dataset names to the real one."
        )


def ensure_synthetic_dataset(
    root: str, spec: SyntheticSpec, auto_generate: bool = True, progress: bool = True
) -> bool:
    """Make sure a complete generated dataset of ``spec`` exists under ``root``.

    Returns True when this call generated it. Safe against concurrent callers (one writes,
    the others wait on the lock, then see the marker).

    Raises:
        FileNotFoundError: missing and ``auto_generate`` is False.
        ValueError: the folder holds a dataset generated with other parameters.
        AnnotationError (a ValueError): the folder holds other data (:func:`check_generator_folder`).
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
    check_generator_folder(root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, LOCK), "w") as lock:
        # flock is released by the OS if this process dies, so a crash never leaves a stale lock.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            marker = _read_marker(root)  # another process may have finished while we waited
            if marker is not None:
                check(marker)
                return False
            check_generator_folder(root)
            logger.info("Generating the synthetic dataset under %s (%s)", root, asdict(spec))
            generate_synthetic_dataset(root, spec, progress=progress)
            content = spec.marker()
            atomic_write_bytes(os.path.join(root, MARKER), json.dumps(content, indent=1).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return True
