"""UCF-101 in its official layout.

::

    <DATA.PATH_TO_DATA_DIR>/
        ucfTrainTestlist/classInd.txt          "1 ApplyEyeMakeup" (1-based)
        ucfTrainTestlist/trainlist0{1,2,3}.txt "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
        ucfTrainTestlist/testlist0{1,2,3}.txt  "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
        UCF-101/<Class>/v_<Class>_gXX_cYY.avi  (the official archive's folder; or videos/)

Videos are looked up under ``DATA.PATH_PREFIX`` when set; otherwise the first existing of
``<root>/UCF-101``, ``<root>/videos`` and ``<root>`` itself (auto-detection). ``DATA.SPLIT_ID``
picks the official split; split "train" reads the trainlist, "val" and "test" the testlist.
Test lists carry no label: the class comes from the folder part of the path (matched to
classInd.txt without regard to case, since the official files spell e.g. HandstandPushups
both ways).

Source ids: the clips of one group ``gXX`` of a class are cuts of one source video, so
``v_<Class>_g08_c01`` and ``v_<Class>_g08_c02`` share the source ``<class>_g08`` (lower case).
"""
import os
import re
from typing import List, Tuple

from iopath.common.file_io import g_pathmgr

from ..build import DATASET_REGISTRY
from ..utils import AnnotationError, join_path
from .base import VideoDataset

UCF_LIST_DIR = "ucfTrainTestlist"
UCF_VIDEO_DIRS = ("UCF-101", "videos", "")
_UCF_STEM = re.compile(r"^v_(?P<group>.+_g\d+)_c\d+$")


def _read_lines(path: str, keep_blank: bool = False) -> List[str]:
    """The stripped lines of an annotation file (blank ones kept as "" with ``keep_blank``, so
    that list positions are line numbers)."""
    if not g_pathmgr.exists(path):
        raise FileNotFoundError(f"Annotation file {path!r} not found. Check DATA.PATH_TO_DATA_DIR.")
    with g_pathmgr.open(path, "r") as f:
        return [ln.strip() for ln in f if keep_blank or ln.strip()]


def find_video_dir(cfg, root: str, candidates=UCF_VIDEO_DIRS) -> str:
    """``DATA.PATH_PREFIX`` when set, else the first existing ``root/<candidate>`` folder."""
    if cfg.DATA.PATH_PREFIX:
        return cfg.DATA.PATH_PREFIX
    for c in candidates:
        d = join_path(root, c) if c else root
        if g_pathmgr.isdir(d):
            return d
    return root


@DATASET_REGISTRY.register()
class UCF101(VideoDataset):
    """UCF-101 (official layout, see the module docstring); ``VideoDataset`` arguments."""

    list_dir = UCF_LIST_DIR

    def source_of(self, path: str) -> str:
        """``<class>_gXX`` of ``v_<Class>_gXX_cYY.<ext>``, in lower case (the official files spell
        some classes two ways, e.g. HandstandPushups / HandStandPushups); the file name itself
        when it does not follow the convention."""
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _UCF_STEM.match(stem)
        return m.group("group").lower() if m else stem

    def _split_file(self, root: str) -> str:
        sid = int(self.cfg.DATA.SPLIT_ID)
        if sid not in (1, 2, 3):
            raise ValueError(f"DATA.SPLIT_ID must be 1, 2 or 3 for {type(self).__name__}, got {sid}.")
        kind = {"train": "trainlist", "val": "testlist", "test": "testlist"}.get(self.split)
        if kind is None:
            raise ValueError(f"Unknown split {self.split!r}; choose train, val or test.")
        return join_path(root, f"{self.list_dir}/{kind}0{sid}.txt")

    def _load_index(self) -> Tuple[List[str], List[int], List[str]]:
        root = self.cfg.DATA.PATH_TO_DATA_DIR
        class_lines = _read_lines(join_path(root, f"{self.list_dir}/classInd.txt"))
        by_number = {}
        for ln in class_lines:
            num, name = ln.split(maxsplit=1)
            by_number[int(num)] = name.strip()
        class_names = [by_number[k] for k in sorted(by_number)]
        lower = {n.lower(): i for i, n in enumerate(class_names)}
        video_dir = find_video_dir(self.cfg, root)
        paths, labels = [], []
        split_file = self._split_file(root)
        labelled = "trainlist" in split_file.rsplit("/", 1)[-1]
        for k, ln in enumerate(_read_lines(split_file, keep_blank=True)):
            if not ln:
                continue
            where = f"{split_file!r} line {k + 1}"
            # The label is the last word (a file name may contain spaces); test lists have none.
            parts = ln.rsplit(maxsplit=1)
            if len(parts) == 2 and parts[1].isdigit():
                rel, label = parts[0], int(parts[1]) - 1
            elif labelled:
                raise AnnotationError(f"{where}: expected '<path> <class number>' (a number of classInd.txt), got {ln!r}.")
            else:
                rel = ln
                folder = rel.replace("\\", "/").split("/")[0].lower()
                if folder not in lower:
                    raise AnnotationError(f"{where}: class folder of {rel!r} is not in classInd.txt.")
                label = lower[folder]
            if not 0 <= label < len(class_names):
                raise AnnotationError(f"{where}: label of {rel!r} is outside classInd.txt (1..{len(class_names)}).")
            paths.append(join_path(video_dir, rel))
            labels.append(label)
        return paths, labels, class_names
