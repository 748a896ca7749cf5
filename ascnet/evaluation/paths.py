"""Resolve what a user gives as "the checkpoint": a file, or a run's output folder."""
import os

from iopath.common.file_io import g_pathmgr


def resolve_checkpoint_path(path: str, key: str = "the checkpoint path") -> str:
    """Return the checkpoint file that ``path`` names.

    Args:
        path: a checkpoint file, or a run's ``OUTPUT_DIR`` (or its ``checkpoints/`` folder), in
            which case the newest complete checkpoint (the ``last_checkpoint`` pointer) is used.
        key: the config key or option the path came from (for the error message).

    Raises:
        FileNotFoundError: nothing there, or a folder without a checkpoint.
    """
    if not g_pathmgr.exists(path):
        raise FileNotFoundError(f"{key}: {path!r} does not exist. Give a checkpoint file or a run's OUTPUT_DIR.")
    if not g_pathmgr.isdir(path):
        return path
    from ascnet.utils.checkpoint import POINTER_FILE, Checkpointer

    problems = []
    for out_dir in (path, os.path.dirname(path.rstrip("/"))):
        ck = Checkpointer(out_dir, None)
        # The pointer's file, else the newest readable checkpoint of the folder (with a warning);
        # a reader leaves the folder as it is.
        found = ck.find_resume_checkpoint(repair=False)
        if found:
            return found
        problem = ck.read_pointer()[1]
        if problem != "is missing" or ck.list_checkpoints():
            problems.append(f"{os.path.join(ck.save_dir, POINTER_FILE)} {problem} and no checkpoint there is readable")
    detail = "; ".join(problems) or "no checkpoints/last_checkpoint"
    raise FileNotFoundError(
        f"{key}: the folder {path!r} holds no checkpoint ({detail}). Give a checkpoint file, or the OUTPUT_DIR "
        "of a finished run."
    )
