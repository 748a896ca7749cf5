"""Kinetics (400/600/700): the official release layout or PySlowFast's list files.

Official layout (cvdfoundation/kinetics-dataset)::

    <root>/annotations/{train,val,test}.csv    label,youtube_id,time_start,time_end,split[,is_cc]
    <root>/<split>/<youtube_id>_<start:06d>_<end:06d>.mp4             (flat, as extracted)
    <root>/<split>/<class name>/<youtube_id>_<start:06d>_<end:06d>.mp4 (or one folder per class;
                                                    spaces in class folders may be underscores)

The video folder of split "val" may be ``val`` or ``validate`` (older releases; same for
``validate.csv``). Rows whose video is absent (removed from YouTube) are dropped once when the
index is built, with a logged count. Classes are the sorted label names of ``train.csv`` (this
split's CSV when there is no train.csv), so indices are stable across splits.

PySlowFast list format: ``<root>/<split>.csv`` with ``<path> <label>`` lines (space separated;
integer labels; paths relative to ``DATA.PATH_PREFIX``). Class names are then the label numbers
as strings, unless ``<root>/classnames.txt`` lists one name per line.

Source ids: the ``youtube_id`` (Kinetics cuts several clips from some YouTube videos, across
classes and splits): the CSV column in the official layout, and in list files the file name
``<youtube_id>_<start:06d>_<end:06d>.<ext>`` (a name of another form is its own source).

The official layout is used when ``<root>/annotations/<split>.csv`` exists, the list format when
``<root>/<split>.csv`` exists (a root CSV with the official header is read as official too).
"""
import csv
import io
import logging
import os
import re
from typing import Dict, List, Optional, Tuple

from iopath.common.file_io import g_pathmgr

from ..build import DATASET_REGISTRY
from ..utils import AnnotationError, join_path
from .base import VideoDataset

logger = logging.getLogger(__name__)

_CLIP_STEM = re.compile(r"^(?P<youtube_id>.+)_\d{6}_\d{6}$")
_SPLIT_ALIASES = {"train": ("train",), "val": ("val", "validate"), "test": ("test",)}


def index_videos_by_stem(video_dir: str, extensions, subfolders: bool = True, prefer=()) -> Dict[str, str]:
    """Map ``<file stem>`` -> path relative to ``video_dir`` for every video file in it (and, with
    ``subfolders``, in its direct subfolders, e.g. Kinetics' class folders): one listing per
    folder instead of an existence check per annotated video.

    Args:
        video_dir: folder (any iopath URI).
        extensions: the video file extensions (``DATA.EXTENSIONS``).
        subfolders: also index the files of each direct subfolder (as ``<sub>/<file>``).
        prefer: extensions in order of preference where one stem has several files; without
            one, the file listed first is kept.
    """
    exts = tuple(e.lower() for e in extensions)
    rank: Dict[str, int] = {}
    for e in prefer:  # an extension listed twice keeps its first place
        rank.setdefault(e.lower(), len(rank))
    out: Dict[str, str] = {}
    best: Dict[str, int] = {}

    def add(name: str, rel: str) -> None:
        stem, ext = os.path.splitext(name)
        r = rank.get(ext.lower(), len(rank))
        if stem not in out or r < best[stem]:
            out[stem], best[stem] = rel, r

    for entry in g_pathmgr.ls(video_dir):
        if entry.lower().endswith(exts):
            add(entry, entry)
        elif subfolders and g_pathmgr.isdir(join_path(video_dir, entry)):
            for f in g_pathmgr.ls(join_path(video_dir, entry)):
                if f.lower().endswith(exts):
                    add(f, f"{entry}/{f}")
    return out


def _read_text(path: str) -> str:
    with g_pathmgr.open(path, "r") as f:
        return f.read()


def _is_official_csv(text: str) -> bool:
    head = text.lstrip().split("\n", 1)[0].lower()
    return "youtube_id" in head and "label" in head


def _official_rows(text: str, path: str = "the CSV") -> List[Dict[str, str]]:
    """The rows of an official CSV; a row with more fields than the header or times that are
    not numbers is an :class:`AnnotationError` naming ``path`` and the line."""
    extra = "\0extra"
    reader = csv.DictReader(io.StringIO(text), restkey=extra)
    rows = []
    for r in reader:
        if not r.get("youtube_id"):
            continue
        if extra in r:
            raise AnnotationError(
                f"{path}, line {reader.line_num}: {len(reader.fieldnames) + len(r[extra])} fields where the header "
                f"has {len(reader.fieldnames)}: a label with an unquoted comma? Quote it, e.g. \"tying knot, knot1\"."
            )
        try:
            float(r["time_start"]), float(r["time_end"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(
                f"{path}, line {reader.line_num}: time_start {r.get('time_start')!r} / time_end {r.get('time_end')!r} "
                "are not numbers (seconds). Fix the row."
            ) from None
        rows.append(r)
    return rows


def _clip_stem(row: Dict[str, str]) -> str:
    return f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"


@DATASET_REGISTRY.register()
class Kinetics(VideoDataset):
    """Kinetics (see the module docstring for the layouts); ``VideoDataset`` arguments."""

    def source_of(self, path: str) -> str:
        """The ``youtube_id`` of ``<youtube_id>_<start>_<end>.<ext>`` (the file name otherwise)."""
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _CLIP_STEM.match(stem)
        return m.group("youtube_id") if m else stem

    def _find(self, root: str, names: Tuple[str, ...], fmt: str) -> Optional[str]:
        for n in names:
            p = join_path(root, fmt.format(n))
            if g_pathmgr.exists(p):
                return p
        return None

    def _load_index(self) -> Tuple[List[str], List[int], List[str]]:
        root = self.cfg.DATA.PATH_TO_DATA_DIR
        names = _SPLIT_ALIASES.get(self.split)
        if names is None:
            raise ValueError(f"Unknown split {self.split!r}; choose train, val or test.")
        official = self._find(root, names, "annotations/{}.csv")
        listed = self._find(root, names, "{}.csv")
        if official is None and listed is not None and _is_official_csv(_read_text(listed)):
            official = listed
        if official is not None:
            return self._load_official(root, official, names)
        if listed is not None:
            return self._load_list(root, listed)
        raise FileNotFoundError(
            f"Kinetics annotations for split {self.split!r} not found: expected "
            f"{join_path(root, 'annotations/' + names[0] + '.csv')} (official release) or "
            f"{join_path(root, names[0] + '.csv')} (PySlowFast 'path label' list). Check DATA.PATH_TO_DATA_DIR."
        )

    # -- official release ----------------------------------------------------------------------
    def _load_official(self, root: str, csv_path: str, names) -> Tuple[List[str], List[int], List[str], List[str]]:
        """(paths, labels, class_names, youtube ids) of the rows whose video exists."""
        rows = _official_rows(_read_text(csv_path), csv_path)
        train_csv = self._find(root, ("train",), "annotations/{}.csv")
        label_rows = _official_rows(_read_text(train_csv), train_csv) if train_csv and train_csv != csv_path else rows
        class_names = sorted({r["label"] for r in label_rows if r.get("label")})
        by_name = {n: i for i, n in enumerate(class_names)}
        prefix = self.cfg.DATA.PATH_PREFIX or root
        video_dir = None
        for n in names:
            d = join_path(prefix, n)
            if g_pathmgr.isdir(d):
                video_dir = d
                break
        if video_dir is None:
            raise FileNotFoundError(
                f"Kinetics video folder for split {self.split!r} not found under {prefix!r} "
                f"(tried {list(names)}). Set DATA.PATH_PREFIX to the folder holding the split folders."
            )
        files = index_videos_by_stem(video_dir, self.cfg.DATA.EXTENSIONS)
        paths, labels, sources, missing = [], [], [], []
        for r in rows:
            rel = files.get(_clip_stem(r))
            if rel is None:
                missing.append(join_path(video_dir, _clip_stem(r)))
                continue
            paths.append(join_path(video_dir, rel))
            labels.append(by_name.get(r.get("label", ""), -1))
            sources.append(r["youtube_id"])
        # Annotated videos without a file (tools/check_dataset.py reports them by name).
        self.missing_videos = missing
        if missing:
            logger.warning(
                "Kinetics %s: %d of %d annotated videos are not in %s and were left out, e.g. %s.",
                self.split, len(missing), len(rows), video_dir, ", ".join(os.path.basename(m) for m in missing[:5]),
            )
        return paths, labels, class_names, sources

    # -- PySlowFast list ------------------------------------------------------------------------
    def _load_list(self, root: str, list_path: str) -> Tuple[List[str], List[int], List[str]]:
        prefix = self.cfg.DATA.PATH_PREFIX or root
        paths, labels = [], []
        for k, ln in enumerate(_read_text(list_path).splitlines()):
            if not ln.strip():
                continue
            parts = ln.strip().rsplit(maxsplit=1)
            if len(parts) != 2:
                raise AnnotationError(f"{list_path!r} line {k + 1}: expected '<path> <label>', got {ln!r}.")
            try:
                label = int(parts[1])
            except ValueError:
                raise AnnotationError(f"{list_path!r} line {k + 1}: label {parts[1]!r} is not an integer.") from None
            paths.append(join_path(prefix, parts[0]))
            labels.append(label)
        names_file = join_path(root, "classnames.txt")
        if g_pathmgr.exists(names_file):
            class_names = [ln.strip() for ln in _read_text(names_file).splitlines() if ln.strip()]
        else:
            class_names = [str(i) for i in range(max(labels) + 1 if labels else 0)]
        return paths, labels, class_names
