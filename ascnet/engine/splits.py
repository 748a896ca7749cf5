"""Run a downstream task on the three official splits and report each split and the mean.

UCF-101 and HMDB-51 results are conventionally reported per split and as the mean over the
official splits 1, 2, 3. :func:`run_splits` runs the config's task once per split, each in its
own ``<OUTPUT_DIR>/split<k>`` folder (so checkpoints never mix), reads back the JSON each run
writes, and writes ``<OUTPUT_DIR>/splits_summary.json``.
"""
import json
import logging
import os
from typing import Dict, Sequence

from iopath.common.file_io import g_pathmgr

logger = logging.getLogger(__name__)

CLASSIFICATION_TASKS = ("finetune", "linear", "test")


def _read_json(path: str) -> Dict:
    with g_pathmgr.open(path, "r") as f:
        return json.load(f)


def split_result(task: str, output_dir: str, split_id: int) -> Dict[str, float]:
    """The metrics written by ``task``'s run of split ``split_id`` in ``output_dir``."""
    if task in CLASSIFICATION_TASKS:
        from .downstream import TEST_RESULTS

        return dict(_read_json(os.path.join(output_dir, TEST_RESULTS.format(split_id=split_id)))["results"])
    if task == "retrieval":
        prefix = f"retrieval_split{split_id}_"
        names = [n for n in g_pathmgr.ls(output_dir) if n.startswith(prefix) and n.endswith(".json")]
        files = [os.path.join(output_dir, n) for n in names]
        if all(g_pathmgr.get_local_path(f) == f for f in files):  # local: the newest run wins
            files.sort(key=os.path.getmtime)
        if not files:
            raise FileNotFoundError(f"No retrieval results for split {split_id} in {output_dir!r}.")
        return dict(_read_json(files[-1])["results"])
    raise ValueError(f"TASK {task!r} has no per-split test results; use one of {list(CLASSIFICATION_TASKS) + ['retrieval']}.")


def summarize(per_split: Dict[int, Dict[str, float]]) -> Dict[str, float]:
    """Mean over the splits of every metric (``num_videos`` is summed)."""
    keys = [k for k in next(iter(per_split.values())) if all(k in r for r in per_split.values())]
    mean = {}
    for k in keys:
        vals = [float(r[k]) for r in per_split.values()]
        mean[k] = sum(vals) if k == "num_videos" else sum(vals) / len(vals)
    return mean


def format_splits_table(task: str, dataset: str, per_split: Dict[int, Dict[str, float]], mean: Dict[str, float]) -> str:
    """One row per split and a mean row (metrics in %)."""
    keys = [k for k in mean if k != "num_videos"]
    lines = [f"{task} {dataset}: each official split and the mean", f"{'split':<6}" + "".join(f"{k:>9}" for k in keys) + f"{'videos':>8}"]
    for s, r in sorted(per_split.items()):
        lines.append(f"{s:<6}" + "".join(f"{r[k]:9.2f}" for k in keys) + f"{int(r.get('num_videos', 0)):8d}")
    lines.append(f"{'mean':<6}" + "".join(f"{mean[k]:9.2f}" for k in keys) + f"{int(mean.get('num_videos', 0)):8d}")
    return "\n".join(lines)


def run_splits(cfg_path: str, opts: Sequence[str] = (), splits: Sequence[int] = (1, 2, 3)) -> Dict:
    """Run the config's task on each split (``DATA.SPLIT_ID``), then report each and the mean.

    Args:
        cfg_path: YAML config (``TASK`` finetune, linear, test or retrieval).
        opts: ``KEY VALUE`` overrides applied to every split.
        splits: the split ids.

    Returns:
        ``{"per_split": {k: metrics}, "mean": metrics, "table": str, "summary": path}``.
    """
    from ascnet.utils.io import atomic_write_bytes

    from .launch import launch
    from .plugins import load_config
    from .tasks import get_task

    base = load_config(cfg_path, list(opts))
    per_split: Dict[int, Dict[str, float]] = {}
    for s in splits:
        out_dir = os.path.join(base.OUTPUT_DIR, f"split{s}")
        cfg = load_config(cfg_path, list(opts) + ["DATA.SPLIT_ID", str(s), "OUTPUT_DIR", out_dir])
        logger.info("Split %d: TASK %s in %s", s, cfg.TASK, out_dir)
        launch(cfg, get_task(cfg.TASK))
        per_split[int(s)] = split_result(cfg.TASK, out_dir, s)
    mean = summarize(per_split)
    table = format_splits_table(base.TASK, base.TEST.DATASET, per_split, mean)
    print(table, flush=True)
    path = os.path.join(base.OUTPUT_DIR, "splits_summary.json")
    atomic_write_bytes(path, json.dumps({"task": base.TASK, "dataset": base.TEST.DATASET, "per_split": per_split,
                                         "mean": mean, "config": cfg_path}, indent=2, sort_keys=True).encode())
    return {"per_split": per_split, "mean": mean, "table": table, "summary": path}
