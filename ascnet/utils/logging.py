"""Logging set-up: rank 0 prints and writes ``OUTPUT_DIR/log.txt``; other ranks stay quiet.

Every module logs through ``logging.getLogger(__name__)``; all of them are children of the
``ascnet`` logger configured here. Other ranks print warnings and errors only, and write their
own ``log.txt.rank<r>`` file so a failure on any rank leaves a trace.

Machine-readable statistics are logged as ``json_stats: {...}`` lines (PySlowFast style) to
``log.txt`` only (not the console, which shows one human progress line), so
``grep json_stats log.txt`` extracts them; ``metrics.json`` holds the same records.
"""
import functools
import json
import logging
import os
import sys
from typing import Any, Dict, Optional

from iopath.common.file_io import g_pathmgr

from ascnet.utils import distributed as du

LOGGER_NAME = "ascnet"
_FORMAT = "[%(asctime)s %(levelname)s %(name)s:%(lineno)d] %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


@functools.lru_cache(maxsize=None)
def _cached_log_stream(path: str):
    # One append stream per file for the life of the process: iopath works on any URI, and
    # caching avoids re-opening the file when set-up runs twice (several tasks in one process).
    folder = os.path.dirname(path)
    if folder:
        g_pathmgr.mkdirs(folder)
    return g_pathmgr.open(path, "a", buffering=1)


def setup_logging(output_dir: Optional[str] = None, rank: Optional[int] = None, name: str = LOGGER_NAME) -> logging.Logger:
    """Configure the ``ascnet`` logger for this process (idempotent).

    Args:
        output_dir: folder of ``log.txt``; None logs to the console only.
        rank: global rank (default: the current torch.distributed rank).
        name: logger to configure.

    Returns:
        The configured logger.
    """
    rank = du.get_rank() if rank is None else rank
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for h in list(log.handlers):  # re-running set-up replaces our handlers, never doubles them
        if getattr(h, "_ascnet", False):
            log.removeHandler(h)
    fmt = logging.Formatter(_FORMAT, datefmt=_DATEFMT)

    console = logging.StreamHandler(stream=sys.stdout)
    console.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    console.setFormatter(fmt)
    console._ascnet = True
    log.addHandler(console)

    if output_dir:
        fname = os.path.join(output_dir, "log.txt" if rank == 0 else f"log.txt.rank{rank}")
        fh = logging.StreamHandler(_cached_log_stream(fname))
        fh.setLevel(logging.DEBUG if rank == 0 else logging.WARNING)
        fh.setFormatter(fmt)
        fh._ascnet = True
        log.addHandler(fh)
    return log


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """A logger under ``ascnet`` (pass ``__name__`` from inside the package)."""
    return logging.getLogger(name)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):  # 0-d tensors and numpy scalars
        try:
            return v.item()
        except (ValueError, RuntimeError):
            return str(v)
    if isinstance(v, float):
        return float(f"{v:.6g}") if abs(v) >= 1e-4 or v == 0 else v
    return v


def log_json_stats(stats: Dict[str, Any], logger: Optional[logging.Logger] = None, level: int = logging.INFO) -> str:
    """Log ``stats`` as one grep-able ``json_stats: {...}`` line and return that line.

    ``level`` DEBUG keeps the line in ``log.txt`` only (the console shows INFO and above).
    """
    stats = {k: _jsonable(v) for k, v in stats.items()}
    line = "json_stats: " + json.dumps(stats, sort_keys=True)
    (logger or get_logger()).log(level, line)
    return line
