"""Shared fixtures. Tests run on CPU with tiny inputs (8 frames, 64x64)."""
import os

import pytest
import torch

# Two cores are shared by the test process and its children: keep each to one thread so
# multi-process tests do not oversubscribe.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def repo_root():
    return REPO_ROOT


class FullDiskFile:
    """Wraps an open file on a disk with ``room`` bytes left: a write past them raises ENOSPC,
    as a full disk does. Everything else (flush, close, ``with``) goes to the wrapped file."""

    def __init__(self, f, room: int = 0):
        self._f, self._room, self._written = f, room, 0

    def write(self, b):
        import errno

        self._written += len(b)
        if self._written > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk_file():
    """The :class:`FullDiskFile` class, for tests that simulate a full disk."""
    return FullDiskFile
