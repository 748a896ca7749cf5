"""HMDB-51 in its official layout.

::

    <DATA.PATH_TO_DATA_DIR>/
        testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt   "<name>.avi 1" per line
        videos/<class>/<name>.avi

In a split file, tag 1 marks a training video, 2 a test video and 0 an unused one. Classes are
the sorted class names of the split files (stable indices 0..50). Videos are looked up under
``DATA.PATH_PREFIX`` when set, else ``<root>/videos`` (or ``<root>`` itself when it holds
the class folders). ``DATA.SPLIT_ID`` picks the split; "train" reads tag 1, "val"/"test" tag 2.

Source ids. HMDB-51 names each clip (its README) ``<source video>_<action>_<visible body
parts: f|h|u|l>_<camera motion: cm|nm>_<people: np1|np2|np3>_<viewpoint: fr|ba|le|ri>_<quality:
bad|med|goo>_<clip number>``, e.g. ``April_09_brush_hair_u_nm_np1_ba_goo_0.avi``. The source is
what precedes the six metadata fields, less the trailing ``_<action>`` (the video's class
folder): ``April_09``. Clips of one source under different actions (a movie scene) share it. A
name that does not follow the convention is its own source.
"""
import os
import re
from typing import List, Tuple

from iopath.common.file_io import g_pathmgr

from ..build import DATASET_REGISTRY
from ..utils import AnnotationError, join_path
from .base import VideoDataset
from .ucf101 import find_video_dir

HMDB_SPLIT_DIR = "testTrainMulti_7030_splits"
_HMDB_STEM = re.compile(
    r"^(?P<head>.+)_[fhul]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:bad|med|goo)_\d+$", re.IGNORECASE
)


def hmdb_source(stem: str, action: str) -> str:
    """The source video of the HMDB-51 clip ``stem`` of class ``action`` (module docstring)."""
    m = _HMDB_STEM.match(stem)
    if not m:
        return stem
    head = m.group("head")
    suffix = f"_{action}"
    return head[: -len(suffix)] if head.lower().endswith(suffix.lower()) and len(head) > len(suffix) else head


@DATASET_REGISTRY.register()
class HMDB51(VideoDataset):
    """HMDB-51 (official layout, see the module docstring); ``VideoDataset`` arguments."""

    def source_of(self, path: str) -> str:
        """The source video of ``<video dir>/<class>/<clip>.avi`` (see :func:`hmdb_source`)."""
        folder, name = os.path.split(path.replace("\\", "/"))
        return hmdb_source(os.path.splitext(name)[0], os.path.basename(folder))

    def _load_index(self) -> Tuple[List[str], List[int], List[str]]:
        root = self.cfg.DATA.PATH_TO_DATA_DIR
        sid = int(self.cfg.DATA.SPLIT_ID)
        if sid not in (1, 2, 3):
            raise ValueError(f"DATA.SPLIT_ID must be 1, 2 or 3 for HMDB51, got {sid}.")
        tag = {"train": "1", "val": "2", "test": "2"}.get(self.split)
        if tag is None:
            raise ValueError(f"Unknown split {self.split!r}; choose train, val or test.")
        split_dir = join_path(root, HMDB_SPLIT_DIR)
        if not g_pathmgr.isdir(split_dir):
            raise FileNotFoundError(f"HMDB-51 split folder {split_dir!r} not found. Check DATA.PATH_TO_DATA_DIR.")
        pattern = re.compile(rf"^(.+)_test_split{sid}\.txt$")
        files = sorted(f for f in g_pathmgr.ls(split_dir) if pattern.match(f))
        if not files:
            raise FileNotFoundError(f"No '<class>_test_split{sid}.txt' files in {split_dir!r}.")
        class_names = [pattern.match(f).group(1) for f in files]
        video_dir = find_video_dir(self.cfg, root, candidates=("videos", ""))
        paths, labels = [], []
        for label, (cls, fname) in enumerate(zip(class_names, files)):
            with g_pathmgr.open(join_path(split_dir, fname), "r") as f:
                for k, ln in enumerate(f):
                    if not ln.strip():
                        continue
                    # The tag is the last word (a file name may contain spaces).
                    parts = ln.strip().rsplit(maxsplit=1)
                    if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                        raise AnnotationError(
                            f"{join_path(split_dir, fname)!r} line {k + 1}: expected '<video name> <tag>' with "
                            f"tag 0 (unused), 1 (train) or 2 (test), got {ln.strip()!r}."
                        )
                    if parts[1] == tag:
                        paths.append(join_path(video_dir, f"{cls}/{parts[0]}"))
                        labels.append(label)
        return paths, labels, class_names
