"""Reading a run's ``metrics.json`` back, for the tests (the package only writes it)."""
import json
import os
from typing import Any, Dict

from iopath.common.file_io import g_pathmgr


def read_metrics(output_dir: str) -> Dict[int, Dict[str, Any]]:
    """Read ``OUTPUT_DIR/metrics.json`` back as ``{iteration: record}``.

    A resumed run drops the lines after its checkpoint's iteration before it appends, so each
    iteration appears once; should a line appear twice anyway (a file edited by hand), the
    later one wins, key by key: records of the same iteration are merged (an evaluation or
    monitor record written at the iteration of a training record adds its keys to it).

    Args:
        output_dir: the run's ``OUTPUT_DIR`` (any iopath URI).

    Returns:
        Dict from the record's ``iteration`` to the record (losses, lr, times, ...).
    """
    records: Dict[int, Dict[str, Any]] = {}
    with g_pathmgr.open(os.path.join(output_dir, "metrics.json"), "r") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                records.setdefault(record["iteration"], {}).update(record)
    return records
