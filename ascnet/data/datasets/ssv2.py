"""Something-Something v2 in its official layout.

::

    <DATA.PATH_TO_DATA_DIR>/
        something-something-v2-labels.json      {"Approaching something with your camera": "0", ...}
        something-something-v2-train.json       [{"id": "78687", "label": "holding potato next to
        something-something-v2-validation.json     vicks vaporub bottle", "template": "Holding
        something-something-v2-test.json           [something] next to [something]", ...}, ...]
        20bn-something-something-v2/<id>.webm   (VP9, 12 fps, 240 px high)

The four JSON files may also sit in ``<root>/labels/`` (the annotation archive's folder). Videos
are looked up under ``DATA.PATH_PREFIX`` when set, else the first existing of
``<root>/20bn-something-something-v2``, ``<root>/videos`` and ``<root>``. A video is
``<id>.webm``, or ``<id>`` with another of ``DATA.EXTENSIONS`` when the folder has no WebM of
that id: the copy ``tools/prepare_dataset.py --dataset SSv2`` writes holds ``<id>.mkv`` (H.264;
WebM cannot carry it), and a copy transcoded elsewhere may hold ``.mp4``. The folder is listed
once to find them; an id with no file keeps its ``.webm`` path and fails by that path.

Labels. The labels JSON maps a *template* name to its class id (a string); the split files give
each video's template with its placeholders in brackets ("Pushing [something] from left to
right"), which the labels JSON writes without them ("Pushing something from left to right").
The brackets are removed before the lookup; a template missing from the labels JSON is an
error naming the file and the video. ``class_names[k]`` is the template of class ``k`` (174
classes). Split "train" reads the train JSON; "val" and "test" read the validation JSON: the
official test split carries no labels (its results go to a leaderboard), so downstream
evaluation uses validation, as the literature does.

Sources: every video is its own recording (crowd-sourced, one clip per upload), so each is its
own source (the default of :class:`VideoDataset`).

Traps of this dataset, and where they are handled (docs/data.md "Something-Something v2"):

- Frame rate: 12 fps. ``DATA.TARGET_FPS`` never upsamples (``ascnet/sampling/clip.py``), so the
  default 25 leaves these videos at their native 12 fps rather than showing each frame twice;
  the configs in ``configs/SSv2/`` set ``TARGET_FPS: 12`` to say so.
- Direction: many classes differ only by direction ("Pushing something from left to right" /
  "... right to left"), so a horizontal flip changes the class. The configs set
  ``AUG.FLIP_PROB: 0``, and a training dataset built with flips on logs a warning.
- Length: about 2-6 s (24-70 frames at 12 fps); a 16-frame clip at speed 2 needs 31 frames, so
  with ``DATA.SHORT_VIDEO_POLICY: fail`` many videos would count as failures. The configs use
  ``clamp``.
- Frame counts: WebM stores none (``stream.frames == 0``); the decoder estimates them from the
  duration (``ascnet/data/decoder.py``).
"""
import json
import logging
from typing import Dict, List, Tuple

from iopath.common.file_io import g_pathmgr

from ..build import DATASET_REGISTRY
from ..utils import AnnotationError, join_path
from .base import VideoDataset
from .kinetics import index_videos_by_stem
from .ucf101 import find_video_dir

logger = logging.getLogger(__name__)

SSV2_PREFIX = "something-something-v2"
SSV2_VIDEO_DIRS = ("20bn-something-something-v2", "videos", "")
_SPLIT_FILES = {"train": "train", "val": "validation", "test": "validation"}


def template_class(template: str) -> str:
    """The labels-JSON key of a split-file template: its placeholder brackets removed."""
    return template.replace("[", "").replace("]", "")


@DATASET_REGISTRY.register()
class SSv2(VideoDataset):
    """Something-Something v2 (official layout, see the module docstring); ``VideoDataset`` arguments."""

    def __init__(self, cfg, split: str, mode: str, **kwargs):
        super().__init__(cfg, split, mode, **kwargs)
        if mode != "test" and cfg.AUG.ENABLE and float(cfg.AUG.FLIP_PROB) > 0:
            logger.warning(
                "SSv2 with AUG.FLIP_PROB=%g: a horizontal flip turns 'left to right' classes into "
                "'right to left' ones without changing the label. Set AUG.FLIP_PROB 0 (configs/SSv2/ do).",
                float(cfg.AUG.FLIP_PROB),
            )

    def _annotation(self, root: str, name: str) -> str:
        for folder in ("", "labels"):
            path = join_path(root, f"{folder}/{name}" if folder else name)
            if g_pathmgr.exists(path):
                return path
        raise FileNotFoundError(
            f"Something-Something v2 annotation {name!r} not found in {root!r} or {join_path(root, 'labels')!r}. "
            "Check DATA.PATH_TO_DATA_DIR."
        )

    def _read_json(self, path: str):
        try:
            with g_pathmgr.open(path, "r") as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path!r} is not valid JSON: {e}.") from None

    def _load_index(self) -> Tuple[List[str], List[int], List[str]]:
        root = self.cfg.DATA.PATH_TO_DATA_DIR
        which = _SPLIT_FILES.get(self.split)
        if which is None:
            raise ValueError(f"Unknown split {self.split!r}; choose train, val or test.")
        labels_path = self._annotation(root, f"{SSV2_PREFIX}-labels.json")
        class_ids: Dict[str, str] = self._read_json(labels_path)
        try:
            by_id = sorted((int(v), k) for k, v in class_ids.items())
        except (AttributeError, ValueError):
            raise AnnotationError(f"{labels_path!r}: expected {{template: class id}} with integer ids.") from None
        if [i for i, _ in by_id] != list(range(len(by_id))):
            raise AnnotationError(f"{labels_path!r}: class ids are not 0..{len(by_id) - 1}.")
        class_names = [name for _, name in by_id]
        label_of = {name: i for i, name in by_id}
        split_path = self._annotation(root, f"{SSV2_PREFIX}-{which}.json")
        video_dir = find_video_dir(self.cfg, root, candidates=SSV2_VIDEO_DIRS)
        try:  # <id>.webm, else <id> in the first of DATA.EXTENSIONS present (a prepared copy)
            files = index_videos_by_stem(video_dir, self.cfg.DATA.EXTENSIONS, subfolders=False,
                                         prefer=[".webm", *self.cfg.DATA.EXTENSIONS])
        except (FileNotFoundError, NotADirectoryError):
            files = {}
        paths, labels = [], []
        for k, entry in enumerate(self._read_json(split_path)):
            vid = entry.get("id") if isinstance(entry, dict) else None
            template = entry.get("template") if isinstance(entry, dict) else None
            if vid is None or template is None:
                raise AnnotationError(
                    f"{split_path!r} entry {k}: expected {{'id': ..., 'template': ...}}, got {entry!r}."
                )
            label = label_of.get(template_class(template))
            if label is None:
                raise AnnotationError(
                    f"{split_path!r} entry {k} (video {vid}): template {template!r} is not in {labels_path!r}."
                )
            paths.append(join_path(video_dir, files.get(str(vid), f"{vid}.webm")))
            labels.append(label)
        return paths, labels, class_names
