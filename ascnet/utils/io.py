"""File helpers on iopath's PathManager (local paths and any registered URI)."""
import os
import uuid

from iopath.common.file_io import g_pathmgr


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are flushed and fsync'ed, then the
    temporary file is renamed over ``path`` (atomic on POSIX). For non-local URIs, iopath's
    copy-then-rename is used.
    """
    folder = os.path.dirname(path)
    if folder:
        g_pathmgr.mkdirs(folder)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    local = g_pathmgr.get_local_path(folder or ".") if "://" in path else None
    if local is None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    with g_pathmgr.open(tmp, "wb") as f:
        f.write(data)
    g_pathmgr.mv(tmp, path)
