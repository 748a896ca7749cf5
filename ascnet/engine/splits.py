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

from fvcore.common.config import CfgNode
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
        blob = _read_json(files[-1])
        res = dict(blob["results"])
        if "num_queries" in blob.get("protocol", {}):  # the videos evaluated: the queries
            res["num_videos"] = int(blob["protocol"]["num_queries"])
        return res
    raise ValueError(f"TASK {task!r} has no per-split test results; use one of {list(CLASSIFICATION_TASKS) + ['retrieval']}.")


def summarize(per_split: Dict[int, Dict[str, float]]) -> Dict[str, float]:
    """Mean over the splits of every metric (``num_videos`` is summed)."""
    keys = [k for k in next(iter(per_split.values())) if all(k in r for r in per_split.values())]
    mean = {}
    for k in keys:
        vals = [float(r[k]) for r in per_split.values()]
        mean[k] = sum(vals) if k == "num_videos" else sum(vals) / len(vals)
    return mean


def _metric_order(name: str):
    # top1, top5, top10, top20, ... in numeric order (the JSON files hold them sorted as text:
    # top1, top10, top20, top5), then the other metrics (mAP) by name.
    if name.startswith("top") and name[3:].isdigit():
        return (0, int(name[3:]), name)
    return (1, 0, name)


def format_splits_table(task: str, dataset: str, per_split: Dict[int, Dict[str, float]], mean: Dict[str, float]) -> str:
    """One row per split and a mean row (metrics in %; the videos column when the runs count them)."""
    keys = sorted((k for k in mean if not k.startswith("num_")), key=_metric_order)
    videos = "num_videos" in mean

    def row(label, r):
        return f"{label!s:<6}" + "".join(f"{r[k]:9.2f}" for k in keys) + (f"{int(r['num_videos']):8d}" if videos else "")

    header = f"{'split':<6}" + "".join(f"{k:>9}" for k in keys) + (f"{'videos':>8}" if videos else "")
    lines = [f"{task} {dataset}: each official split and the mean", header]
    lines += [row(s, r) for s, r in sorted(per_split.items())]
    lines.append(row("mean", mean))
    return "\n".join(lines)


def split_configs(cfg_path: str, opts: Sequence[str] = (), splits: Sequence[int] = (1, 2, 3)) -> Dict[int, CfgNode]:
    """The config of each split: ``DATA.SPLIT_ID`` k, ``OUTPUT_DIR`` ``<OUTPUT_DIR>/split<k>``."""
    from .plugins import load_config

    base = load_config(cfg_path, list(opts))
    out = {}
    for s in splits:
        out_dir = os.path.join(base.OUTPUT_DIR, f"split{s}")
        out[int(s)] = load_config(cfg_path, list(opts) + ["DATA.SPLIT_ID", str(s), "OUTPUT_DIR", out_dir])
    return out


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
    for s, cfg in split_configs(cfg_path, opts, splits).items():
        logger.info("Split %d: TASK %s in %s", s, cfg.TASK, cfg.OUTPUT_DIR)
        launch(cfg, get_task(cfg.TASK))
        per_split[s] = split_result(cfg.TASK, cfg.OUTPUT_DIR, s)
    mean = summarize(per_split)
    table = format_splits_table(base.TASK, base.TEST.DATASET, per_split, mean)
    print(table, flush=True)
    path = os.path.join(base.OUTPUT_DIR, "splits_summary.json")
    atomic_write_bytes(path, json.dumps({"task": base.TASK, "dataset": base.TEST.DATASET, "per_split": per_split,
                                         "mean": mean, "config": cfg_path}, indent=2, sort_keys=True).encode())
    return {"per_split": per_split, "mean": mean, "table": table, "summary": path}
