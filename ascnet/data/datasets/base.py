"""The map-style video dataset all registered datasets share.

A subclass only reads its annotation files (:meth:`VideoDataset._load_index`); sampling clips,
decoding, augmentation, retries on bad videos and failure accounting live here.

``dataset[key]`` with ``key = i`` or ``(i, seed)`` returns::

    {"clips": Tensor, "index": int, "label": int, "source": int}

``source`` is the dense id of the video's source recording (``dataset.source_names[source]``
names it; :meth:`VideoDataset.source_of`): clips cut from one recording share it, so the
default collate gives ``batch["source"]`` (N,) int64 for the memory bank to exclude same-source
positives.

``clips`` holds one clip per speed of ``DATA.SPEEDS`` in "pretrain" mode (each with its own
augmentation), one clip in "train" mode and V = num_clips x num_crops views in "test" mode,
ordered clip-major (clip 0 crop 0, clip 0 crop 1, ...); their layout depends on ``AUG.DEVICE``
(below): uint8 (S, T, H, W, C) / (T, H, W, C) / (V, C, T, H, W) plus ``"aug"`` by default.

Where the augmentation runs (``AUG.DEVICE``, ``ascnet/data/batch_augment.py``): with "device"
(the default) a training sample holds **uint8** clips decoded at ``AUG.LOAD_SIZE`` x
``AUG.LOAD_SIZE``, in the decoder's channels-last layout ((S, T, H, W, C) in "pretrain" mode,
(T, H, W, C) in "train" mode), plus ``"aug"``, the per-clip augmentation parameters (a dict of tensors with
the same leading dims as the clips), and the trainer applies them to the whole batch on its
device; test samples hold uint8 views that the evaluation normalises on its device. With
"loader" the dataset applies the same batched ops itself and returns float32 clips normalised
with ``DATA.MEAN`` / ``DATA.STD`` (at ``DATA.CROP_SIZE``), and no ``"aug"``. The seed drives
every random choice of the sample (clip starts, augmentation, the replacement of a bad video),
so a sample is the same whatever the worker that loads it. Without a seed one is drawn from
torch's global RNG (seeded per worker by the loader).

Bad videos (missing, empty, truncated, undecodable, or shorter than a clip under
``DATA.SHORT_VIDEO_POLICY = "fail"``): in "pretrain"/"train" mode the sample is replaced by
another video chosen from the seed (up to ``DATA.NUM_RETRIES`` times); ``index``, ``label`` and
``source`` are then those of the video actually loaded. Each bad path is logged once and counted;
:meth:`VideoDataset.failure_stats` reports the counts (shared by all loader workers), and once
``DATA.FAILURE_MIN_ATTEMPTS`` videos have been loaded a failure ratio above
``DATA.MAX_FAILURE_RATIO`` stops the run with the first bad paths. In "test" mode a bad video is
an error (every evaluation video must count): run ``tools/check_dataset.py`` first.
"""
import logging
from typing import Any, Dict, List, Optional, Tuple

import torch
from fvcore.common.config import CfgNode
from torch.utils.data import Dataset, get_worker_info

from ascnet.sampling import build_clip_sampler
from ascnet.sampling.clip import VideoTooShortError

from ..batch_augment import build_batch_augment, build_param_sampler, load_size, normalize_clips, stack_params
from ..decoder import VideoDecodeError, decode_clips
from ..transforms import build_eval_transform
from ..utils import derive_seed, parse_key
from .index import PackedInts, PackedStrings, dense_ids

logger = logging.getLogger(__name__)

MODES = ("pretrain", "train", "test")
# Rows of failure counters for loader workers, at least (see VideoDataset.__init__).
_MIN_WORKER_ROWS = 64


class DataFailureError(RuntimeError):
    """Too many videos of a dataset failed to load (see ``DATA.MAX_FAILURE_RATIO``)."""


class VideoDataset(Dataset):
    """Base class of the registered video datasets.

    Args:
        cfg: the run config.
        split: "train" | "val" | "test" (which annotation list is read).
        mode: "pretrain" | "train" | "test" (what a sample holds; see the module docstring).
        num_clips: test mode: clips per video (default ``TEST.NUM_ENSEMBLE_VIEWS``, which
            retrieval sets to ``RETRIEVAL.NUM_CLIPS``).
        num_crops: test mode: spatial crops per clip (default ``TEST.NUM_SPATIAL_CROPS``).

    Attributes:
        paths: video paths (local paths or iopath URIs), one per index (a read-only list-like
            :class:`~ascnet.data.datasets.index.PackedStrings`, shared by the loader workers).
        labels: class index per video (-1 when unknown; a :class:`PackedInts`).
        sources: dense source id per video (a :class:`PackedInts`; see :meth:`source_of`).
        source_names: the name of each source id.
        class_names: names of the classes, ``class_names[label]``.
        num_classes: ``len(class_names)``.
    """

    def __init__(
        self,
        cfg: CfgNode,
        split: str,
        mode: str,
        num_clips: Optional[int] = None,
        num_crops: Optional[int] = None,
    ):
        if mode not in MODES:
            raise ValueError(f"Unknown dataset mode {mode!r}; choose one of {list(MODES)}.")
        self.cfg = cfg
        self.split = split
        self.mode = mode
        loaded = self._load_index()
        paths, labels, class_names = loaded[:3]
        if not paths:
            raise ValueError(
                f"{type(self).__name__} found no videos for split {split!r} under "
                f"DATA.PATH_TO_DATA_DIR={cfg.DATA.PATH_TO_DATA_DIR!r}. Check the path and DATA.SPLIT_ID."
            )
        source_of = loaded[3] if len(loaded) > 3 else [self.source_of(p) for p in paths]
        if len(source_of) != len(paths):
            raise ValueError(f"{type(self).__name__}: {len(source_of)} source names for {len(paths)} videos.")
        # The index as numpy buffers shared by the loader workers (index.py says why).
        self.paths = PackedStrings(paths)
        self.labels = PackedInts(int(x) for x in labels)
        sources, source_names = dense_ids(source_of)
        self.sources = PackedInts(sources)
        self.source_names = PackedStrings(source_names)
        self.class_names: List[str] = list(class_names)
        self.num_classes = len(self.class_names)

        # The sampler of the mode comes from its registry (DATA.CLIP_SAMPLER.<MODE>), so a
        # plugin's sampler can be selected; a num_clips override reaches it through the config.
        sampler_cfg = cfg
        if mode == "test" and num_clips is not None:
            sampler_cfg = cfg.clone()
            sampler_cfg.defrost()
            sampler_cfg.TEST.NUM_ENSEMBLE_VIEWS = int(num_clips)
            sampler_cfg.freeze()
        self.clip_sampler = build_clip_sampler(sampler_cfg, mode)
        self.mean, self.std = list(cfg.DATA.MEAN), list(cfg.DATA.STD)
        self.augment = build_batch_augment(cfg)  # checks AUG.DEVICE
        self.on_device = cfg.AUG.DEVICE == "device"
        if mode == "test":
            self.transform = build_eval_transform(cfg, num_crops=num_crops)
            self.num_views = self.clip_sampler.num_clips * self.transform.num_crops
        else:
            self.param_sampler = build_param_sampler(cfg)
            self.load_size = (load_size(cfg), load_size(cfg))
        self.num_retries = int(cfg.DATA.NUM_RETRIES)
        self.max_failure_ratio = float(cfg.DATA.MAX_FAILURE_RATIO)
        self.min_attempts = int(cfg.DATA.get("FAILURE_MIN_ATTEMPTS", 50))
        # Counters live in shared memory so that all loader workers (forked or spawned) count
        # together: one row [videos loaded, failures] per process, each row written by its own
        # process only and the rows summed on read. A shared "+= 1" is a read-modify-write that
        # loses increments when two workers run it at once; a lock would also do, but a worker
        # killed while holding it would block the others. Row 0: the process that built the
        # dataset (and any other process); row 1 + w: DataLoader worker w (ids past the table
        # share rows, which is then approximate again; the table is sized for the configured
        # workers and at least _MIN_WORKER_ROWS). One flag per bad video (only ever set to True,
        # so concurrent writes cannot lose it; read them through _bad_flags(), never in place).
        rows = 1 + max(int(cfg.DATA_LOADER.NUM_WORKERS), _MIN_WORKER_ROWS)
        self._counts = torch.zeros(rows, 2, dtype=torch.int64).share_memory_()
        self._bad = torch.zeros(len(self.paths), dtype=torch.bool).share_memory_()
        self._logged: set = set()

    # ----------------------------------------------------------------------------------------
    # For subclasses
    # ----------------------------------------------------------------------------------------
    def _load_index(self) -> Tuple[List[str], List[int], List[str]]:
        """Read the annotations of ``self.split``: (paths, labels, class_names).

        A fourth element, one source name per video, may follow; without it the source of each
        video is :meth:`source_of` of its path.
        """
        raise NotImplementedError

    def source_of(self, path: str) -> str:
        """The name of the source recording of a video (default: the video itself).

        Videos cut from one recording (UCF-101 clips of a group, HMDB-51 clips of one movie
        scene, Kinetics clips of one YouTube video) share a source; the memory bank excludes
        same-source keys from the positives of a query. Subclasses override this where the file
        names tell the source.
        """
        return path

    def _row(self) -> torch.Tensor:
        """The row of failure counters this process writes (see ``__init__``)."""
        info = get_worker_info()
        if info is None:
            return self._counts[0]
        return self._counts[1 + info.id % (len(self._counts) - 1)]

    # ----------------------------------------------------------------------------------------
    # Loading
    # ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int, seed: int) -> Dict[str, Any]:
        """Decode and transform video ``index`` (no retry). Raises on a bad video."""
        gen = torch.Generator()
        gen.manual_seed(derive_seed(seed, 0))
        if self.mode == "test":
            clips, _ = decode_clips(self.paths[index], self.clip_sampler, gen)
            views = torch.cat([self.transform(c) for c in clips])  # (clips * crops, C, T, H, W) uint8
            out = views if self.on_device else normalize_clips(views, self.mean, self.std)
            return {"clips": out, "index": index, "label": self.labels[index], "source": self.sources[index]}
        clips, info = decode_clips(self.paths[index], self.clip_sampler, gen, size=self.load_size)
        # Parameters drawn on the video's own frame size (the draws of the per-clip pipeline),
        # the crop box then mapped onto the loaded frames.
        native = (info.height, info.width)
        params = [self.param_sampler.draw(*native, derive_seed(seed, 1 + k)) for k in range(len(clips))]
        aug = stack_params(params, native, self.load_size)
        # (S, T, H, W, C) uint8: the decoder's own memory layout, so this is a plain copy; the
        # transposition to (C, T, H, W) happens in BatchAugment, on the device.
        u8 = torch.stack([c.permute(0, 2, 3, 1) for c in clips])
        if not self.on_device:
            u8, aug = self.augment(u8, aug), None
        sample = {
            "clips": u8 if self.mode == "pretrain" else u8[0],
            "index": index,
            "label": self.labels[index],
            "source": self.sources[index],
        }
        if aug is not None:
            sample["aug"] = aug if self.mode == "pretrain" else {k: v[0] for k, v in aug.items()}
        return sample

    def __getitem__(self, key) -> Dict[str, Any]:
        index, seed = parse_key(key)
        if not 0 <= index < len(self.paths):
            raise IndexError(f"Index {index} out of range for a dataset of {len(self.paths)} videos.")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)))
        current = index
        row = self._row()
        for attempt in range(self.num_retries + 1):
            row[0] += 1
            if self.mode == "test" or not bool(self._bad[current]):  # test mode never substitutes
                try:
                    return self.load(current, derive_seed(seed, attempt))
                except (VideoDecodeError, VideoTooShortError) as e:
                    self._record_failure(current, e)
                    if self.mode == "test":
                        raise VideoDecodeError(
                            f"Test video {self.paths[current]!r} cannot be used: {e}. Evaluation needs every "
                            "video; run tools/check_dataset.py to list bad files, then fix or remove them."
                        ) from e
            else:
                row[1] += 1  # a known bad video: count it again, skip the decode
            self._check_failure_ratio()
            current = derive_seed(seed, attempt, 0xBAD) % len(self.paths)
        raise DataFailureError(
            f"Video {self.paths[index]!r} and {self.num_retries} replacements failed to load. "
            f"{self._bad_summary()}"
        )

    # ----------------------------------------------------------------------------------------
    # Failure accounting
    # ----------------------------------------------------------------------------------------
    def _record_failure(self, index: int, error: Exception) -> None:
        self._row()[1] += 1
        if not bool(self._bad[index]) and index not in self._logged:
            logger.warning("Skipping bad video %s: %s", self.paths[index], error)
        self._logged.add(index)
        self._bad[index] = True

    def _totals(self) -> Tuple[int, int]:
        """(loads, failures) of all processes. Failures are read first: every process counts a
        load before its failure, so the totals never show more failures than loads while
        workers are writing (a torn read could otherwise trip DATA.MAX_FAILURE_RATIO 1.0)."""
        failures = int(self._counts[:, 1].sum())
        return int(self._counts[:, 0].sum()), failures

    def _bad_flags(self) -> torch.Tensor:
        """A private copy of the shared bad-video flags, (N,) bool, to read from.

        Other processes set flags while this one reads them. ``torch.nonzero`` makes two passes
        over its input: it counts the set flags, sizes its output, then writes their indices; a
        flag set between the passes is written past the output's end, which corrupts the heap
        (``malloc_consolidate(): invalid chunk size``, ``free(): invalid next size`` or an
        INTERNAL ASSERT in the process that read). A copy is one pass over the flags, each a
        single byte, so it is a consistent snapshot that anything may then read.
        """
        return self._bad.clone()

    def _bad_summary(self, n: int = 10) -> str:
        bad = self.bad_paths(n)
        return f"First bad videos: {bad}. Run tools/check_dataset.py for a full report." if bad else ""

    def _check_failure_ratio(self) -> None:
        attempts, failures = self._totals()
        if attempts >= self.min_attempts and failures > self.max_failure_ratio * attempts:
            raise DataFailureError(
                f"{failures} of {attempts} video loads failed ({failures / attempts:.1%}), more than "
                f"DATA.MAX_FAILURE_RATIO={self.max_failure_ratio:g}. {self._bad_summary()} Fix or remove "
                "the files, or raise DATA.MAX_FAILURE_RATIO."
            )

    def bad_paths(self, n: Optional[int] = None) -> List[str]:
        """Paths of the videos that failed so far (in index order; the first ``n``)."""
        return self._paths_of(self._bad_flags(), n)

    def _paths_of(self, flags: torch.Tensor, n: Optional[int] = None) -> List[str]:
        """Paths of the videos whose ``flags`` ((N,) bool, a private copy) are set; the first ``n``."""
        idx = torch.nonzero(flags).flatten().tolist()
        return [self.paths[i] for i in (idx if n is None else idx[:n])]

    def failure_stats(self) -> Dict[str, Any]:
        """Counts for logging: ``{"loads", "failures", "failure_ratio", "bad_videos", "bad_paths"}``.

        ``loads`` and ``failures`` count video load attempts since the dataset was built (all
        workers together); ``bad_paths`` lists the first ten bad videos.
        """
        attempts, failures = self._totals()
        bad = self._bad_flags()  # one snapshot, so that the count and the paths agree
        return {
            "loads": attempts,
            "failures": failures,
            "failure_ratio": failures / attempts if attempts else 0.0,
            "bad_videos": int(bad.sum()),
            "bad_paths": self._paths_of(bad, 10),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, mode={self.mode!r}, videos={len(self)}, "
            f"classes={self.num_classes})"
        )
