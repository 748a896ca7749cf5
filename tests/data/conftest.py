"""Fixtures of the data tests."""
from typing import Optional

import pytest
from video_helpers import write_index_video


@pytest.fixture
def index_video(tmp_path):
    """Factory: ``index_video(n, ext=".avi", fps=25)`` -> path of an index-encoded video."""

    def make(n: int, ext: str = ".avi", fps: int = 25, name: Optional[str] = None, size: int = 64) -> str:
        return write_index_video(str(tmp_path / f"{name or f'v{n}_{fps}'}{ext}"), n, size=size, fps=fps)

    return make
