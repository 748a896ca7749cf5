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
