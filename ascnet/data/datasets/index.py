"""The dataset index (paths, labels, source ids) serialised into numpy buffers.

DataLoader workers are forked from the process that built the dataset, so they share its
memory copy-on-write. A Python list of strings does not stay shared: reading an entry writes its
reference count, and the page holding that object is copied into the worker. A worker that
touches every entry of a Kinetics-sized list ends up with a private copy of all of it (tens of
MB per worker; see ``benchmarks/index_memory.py`` and docs/benchmarks.md "Dataset index
memory"). Here each column is one numpy buffer (no Python object per entry), so reads never
write to its pages and the index stays shared whatever the number of workers. This is the idea
of detectron2's ``DatasetFromList(serialize=True)``; it is written out here because detectron2
is not a dependency and its version pickles each record (we only need strings and integers,
stored as UTF-8 bytes with offsets and as int64 arrays).

Both classes are read-only :class:`collections.abc.Sequence` objects: ``x[i]`` returns a
``str`` / ``int``, slicing returns a list, and ``==`` / ``+`` behave as for a list, so callers
written for the former lists keep working.
"""
import operator
from collections.abc import Sequence
from typing import Dict, Iterable, List, Tuple

import numpy as np


class _PackedSequence(Sequence):
    """List-like behaviour shared by the packed columns (equality and concatenation as a list)."""

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple, Sequence)) and not isinstance(other, str):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    def __add__(self, other) -> list:
        return list(self) + list(other)

    def __radd__(self, other) -> list:
        return list(other) + list(self)

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self[:3])
        return f"{type(self).__name__}([{head}{', ...' if len(self) > 3 else ''}], len={len(self)})"

    __hash__ = None  # mutable-looking like a list: not hashable


class PackedStrings(_PackedSequence):
    """A read-only list of strings stored as one UTF-8 byte buffer and (N + 1,) int64 offsets.

    Args:
        items: the strings.
    """

    def __init__(self, items: Iterable[str]):
        encoded = [s.encode("utf-8") for s in items]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
        self._buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i, n = operator.index(i), len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} entries")
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._buffer[start:end].tobytes().decode("utf-8")

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        return self._buffer.nbytes + self._offsets.nbytes


class PackedInts(_PackedSequence):
    """A read-only list of integers stored as one (N,) int64 array (``np.asarray`` gives it).

    Args:
        items: the integers.
    """

    def __init__(self, items: Iterable[int]):
        self._values = np.asarray(list(items) if not isinstance(items, np.ndarray) else items, dtype=np.int64)
        self._values.setflags(write=False)

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._values[i].tolist()
        return int(self._values[operator.index(i)])

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)

    @property
    def nbytes(self) -> int:
        """Bytes held by the array."""
        return self._values.nbytes


def dense_ids(names: Iterable[str]) -> Tuple[np.ndarray, List[str]]:
    """Number names densely in order of first appearance.

    Args:
        names: one name per video (e.g. the source video of each clip).

    Returns:
        ((N,) int64 ids, the distinct names with ``distinct[ids[i]] == names[i]``).
    """
    table: Dict[str, int] = {}
    ids = np.fromiter((table.setdefault(n, len(table)) for n in names), dtype=np.int64)
    return ids, list(table)
