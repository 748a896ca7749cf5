"""File helpers on iopath's PathManager (local paths and any registered URI).

Every file that a run must not lose half-written (checkpoints, the ``last_checkpoint`` pointer,
``config.yaml``, feature caches, json results) is written by :func:`atomic_write`: the one place
with the write-to-temporary, fsync, rename sequence.
"""
import io
import os
import re
import uuid
from typing import Callable, List, Union

from iopath.common.file_io import g_pathmgr

# Temporary files of atomic_write: "<final name>.tmp-<8 hex digits>".
TMP_PATTERN = re.compile(r"\.tmp-[0-9a-f]{8}$")


class OutputWriteError(RuntimeError):
    """A run's output file (e.g. ``metrics.json``) could not be written; a one-line message
    that names the file and the fix. ``path`` is the file."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


def interrupt_in(e: BaseException) -> Union[BaseException, None]:
    """The interrupt (KeyboardInterrupt, SystemExit, a SIGTERM exception: a BaseException that is
    not an Exception) behind ``e``, or None.

    An interrupt raised inside Python code that C++ called back, such as the file ``write`` of
    ``torch.save``, comes out as a RuntimeError (``enforce fail at inline_container.cc``) whose
    ``__context__`` is the interrupt. Handlers of write errors look here first, so that Ctrl-C
    during a save stops the run as Ctrl-C, not as a disk error.
    """
    seen = set()
    while e is not None and id(e) not in seen:
        if not isinstance(e, Exception):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def first_line(e: BaseException, limit: int = 200) -> str:
    """``"<ExceptionType>: <message>"`` on one line (whitespace collapsed, message cut at
    ``limit`` characters), for the one-line errors that name a file and the fix."""
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text[:limit]}"


def atomic_write(path: str, write: Callable[[io.BufferedIOBase], None]) -> None:
    """Write ``path`` so that readers see the old file or the whole new one, never a part.

    ``write(f)`` streams the content into a temporary file in the same folder
    (``<path>.tmp-<hex>``); the file is flushed and fsync'ed, renamed over ``path``
    (``os.replace``, atomic on POSIX) and the folder is fsync'ed so that the rename itself
    survives a power loss. On any error (disk full included) the temporary file is removed and
    the error is raised again (an interrupt behind it as itself: :func:`interrupt_in`); ``path``
    is untouched. Non-local URIs are written into memory
    first, then through iopath's copy-then-rename (iopath has no fsync).

    Args:
        path: final file path (any iopath URI); its folder is created.
        write: called once with a binary file object open for writing.
    """
    folder = os.path.dirname(path)
    if folder:
        g_pathmgr.mkdirs(folder)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    if "://" in path:
        buf = io.BytesIO()
        write(buf)
        with g_pathmgr.open(tmp, "wb") as f:
            f.write(buf.getvalue())
        g_pathmgr.mv(tmp, path)
        return
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        interrupt = interrupt_in(e)
        if interrupt is not None and interrupt is not e:
            raise interrupt from e  # Ctrl-C inside torch.save's write: still a Ctrl-C
        raise
    try:  # make the rename durable
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write_bytes(path: str, data: Union[bytes, str]) -> None:
    """:func:`atomic_write` of ``data`` (a str is encoded as UTF-8)."""
    blob = data.encode("utf-8") if isinstance(data, str) else data
    atomic_write(path, lambda f: f.write(blob))


def remove_partial_files(folder: str) -> List[str]:
    """Delete the temporary files that a kill during :func:`atomic_write` left in ``folder``.

    Only names of the form ``<name>.tmp-<8 hex digits>`` are removed. Call it when no writer
    is active in the folder (a run's start, on the process that writes).

    Returns:
        The paths removed.
    """
    removed = []
    if "://" in folder or not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if TMP_PATTERN.search(name):
            path = os.path.join(folder, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed
