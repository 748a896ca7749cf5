"""One run per output folder: an advisory lock on ``<OUTPUT_DIR>/.run.lock``.

Two runs writing one folder interleave their ``metrics.json`` records and overwrite each other's
checkpoints and ``log.txt``; on a cluster that happens when a job is resubmitted while its
previous incarnation still runs. :func:`hold_run_lock` takes an exclusive POSIX record lock
(``fcntl.lockf``) on the lock file for the whole run (once per run: global rank 0, before
anything is written in the folder) and records the holder's host and PID in it, so a second run
is refused with one line naming them. The file is removed when the run ends; a killed run leaves
it behind, unlocked, and the next run takes it.

A record lock belongs to the process, not to the open file: the kernel releases it when the
holder ends, whatever way (exit, exception, SIGKILL, OOM kill), and forked children (DataLoader
workers, which may outlive a killed parent by seconds) never hold it. (``flock`` would be shared
with every forked child through the inherited descriptor, so a SIGKILLed run's orphaned workers
would refuse the resume.) So a killed run never blocks its successor, and a SLURM requeue (a new
process of the same job, started after the old one ended) takes the lock again and resumes. On
filesystems without working locks (locking fails, e.g. NFS mounted with ``nolock`` or some FUSE
filesystems) the run goes on with a warning and no protection; a non-local OUTPUT_DIR (an iopath
URI other than ``file://``) is not locked either.
"""
import contextlib
import errno
import fcntl
import logging
import os
import socket
from typing import Iterator

from .io import OutputWriteError, first_line

logger = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"


class RunLockError(RuntimeError):
    """Another live run holds the output folder; the message names its host and PID."""


def _local_path(output_dir: str):
    if not output_dir:
        return None
    if output_dir.startswith("file://"):
        return output_dir[len("file://") :]
    return None if "://" in output_dir else output_dir


@contextlib.contextmanager
def hold_run_lock(output_dir: str) -> Iterator[None]:
    """Hold the run lock of ``output_dir`` inside the block (created if missing).

    Raises:
        RunLockError: another process holds it (its host and PID, as it recorded them).
        OutputWriteError: the folder cannot be created or written.
    """
    folder = _local_path(output_dir)
    if not folder:
        logger.warning("OUTPUT_DIR %s is not a local path: not locked against a second run.", output_dir)
        yield
        return
    path = os.path.join(folder, LOCK_NAME)
    f, locked = _open_and_lock(folder, path)
    try:
        if locked:
            f.seek(0)
            f.truncate()
            f.write(f"host {socket.gethostname()}, PID {os.getpid()}\n")
            f.flush()
        try:
            yield
        finally:
            if locked:
                # Removed while still locked: a contender that opened this file meanwhile finds,
                # once it gets the lock, that the path no longer names it, and opens it anew.
                with contextlib.suppress(OSError):
                    os.unlink(path)
                fcntl.lockf(f, fcntl.LOCK_UN)
    finally:
        f.close()


def _open_and_lock(folder: str, path: str):
    """(open lock file, locked) for ``path``; retried while the file it locked was removed."""
    for _ in range(100):
        try:
            os.makedirs(folder, exist_ok=True)
            # Opened without truncation: the holder's record must survive a refused contender's open.
            f = open(path, "a+")
        except OSError as e:
            raise OutputWriteError(
                f"Cannot write the output folder {folder!r} ({first_line(e)}). Give OUTPUT_DIR a folder this user "
                "can write.",
                path,
            ) from e
        try:
            locked = _try_lock(f, folder, path)
            if not locked or _names(path, f):
                return f, locked
        except BaseException:
            f.close()
            raise
        f.close()  # locked a file its holder removed on release: open the path again
    raise OutputWriteError(f"Could not take the run lock {path}: the file keeps being replaced.", path)


def _names(path: str, f) -> bool:
    """Whether ``path`` still names the open file ``f``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _try_lock(f, folder: str, path: str) -> bool:
    """Lock ``f``; False (with a warning) on a filesystem without locks; RunLockError when held."""
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EAGAIN):
            return _no_locks(path, e)
        f.seek(0)
        holder = f.read().strip() or "a process that has not recorded itself yet"
        raise RunLockError(
            f"{folder!r} is in use by another run ({holder}; lock file {path}). Wait for it to end, "
            "stop it, or give this run another OUTPUT_DIR."
        ) from None
    return True


def _no_locks(path: str, e: OSError) -> bool:
    if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        raise e
    logger.warning("Cannot lock %s (%s): this filesystem has no working locks; a second run on "
                   "this folder would not be refused.", path, e)
    return False
