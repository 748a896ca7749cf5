"""resolve_checkpoint_path: a run folder with a lost or dangling pointer."""
import os

import pytest
import torch

from ascnet.evaluation.paths import resolve_checkpoint_path
from ascnet.utils.checkpoint import Checkpointer


def test_run_folder_with_a_dangling_pointer(tmp_path):
    ck = Checkpointer(str(tmp_path), torch.nn.Linear(2, 2))
    first = ck.save("a", iteration=1)
    ck.save("b", iteration=2)
    ptr = tmp_path / "checkpoints" / "last_checkpoint"
    os.remove(tmp_path / "checkpoints" / "b.pyth")  # the pointer names a file that is gone
    assert resolve_checkpoint_path(str(tmp_path), "TEST.CHECKPOINT_FILE_PATH") == first
    assert ptr.read_text() == "b.pyth"  # a reader does not repair the folder
    os.remove(first)
    with pytest.raises(FileNotFoundError, match=r"last_checkpoint.*names 'b.pyth', which does not exist"):
        resolve_checkpoint_path(str(tmp_path), "TEST.CHECKPOINT_FILE_PATH")
