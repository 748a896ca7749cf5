#!/usr/bin/env python
"""Memory each DataLoader worker adds for the dataset index: Python lists vs numpy buffers.

A Kinetics-like index of ``--videos`` entries is built without files (paths
``<root>/train/<class>/<youtube_id>_<start>_<end>.mp4``, 400 classes, about 3 clips per
YouTube id) with the real :class:`ascnet.data.datasets.Kinetics` code path for the columns
(``source_of`` for the source ids). Two layouts, measured in one run:

- ``lists``: the former index (``paths``, ``labels``, ``sources`` as Python lists of ``str`` /
  ``int``, as ``datasets/base.py`` held them before the packed index);
- ``packed``: the index the datasets hold now (``ascnet/data/datasets/index.py``).

For each, ``--workers`` forked DataLoader workers each read every entry (``paths[i]``,
``labels[i]``, ``sources[i]``) once. Each worker reads its own ``/proc/self/smaps_rollup``
before and after: USS (``Private_Clean + Private_Dirty``, memory only that worker holds) and
PSS. The figure that matters is the USS a worker gains by touching the index (copy-on-write
pages the reference counts dirtied), next to the worker's whole USS; the parent's RSS growth
for building the index and the CPU time of the touch are printed beside them. Linux only.

The last line is one JSON object. Example::

    python benchmarks/index_memory.py --videos 1000000 --workers 4
"""
import argparse
import json
import os
import platform
import resource
import time
from datetime import datetime, timezone

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ascnet.config import get_cfg
from ascnet.data.datasets import Kinetics


def smaps_kb(pid="self") -> dict:
    """``{"uss", "pss", "rss"}`` in kB from ``/proc/<pid>/smaps_rollup``."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    return {
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        "pss": fields.get("Pss", 0),
        "rss": fields.get("Rss", 0),
    }


class FakeKinetics(Kinetics):
    """Kinetics with a generated index of ``n`` entries (no files are opened)."""

    def __init__(self, cfg, n: int):
        self._n = n
        super().__init__(cfg, "train", "test")

    def _load_index(self):
        rng = np.random.default_rng(0)
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", np.uint8)
        ids = ["".join(map(chr, letters[rng.integers(0, 64, 11)])) for _ in range(self._n // 3 + 1)]
        classes = [f"class_{k:03d}_some_action" for k in range(400)]
        labels = rng.integers(0, 400, self._n).tolist()
        paths = []
        for i in range(self._n):
            start = 10 * (i % 3)
            paths.append(f"/datasets/kinetics400/train/{classes[labels[i]]}/{ids[i // 3]}_{start:06d}_{start + 10:06d}.mp4")
        return paths, labels, classes


class Toucher(Dataset):
    """Item ``w``: read every index entry once; return the worker's memory before and after."""

    def __init__(self, ds, workers: int):
        self.ds, self.workers = ds, workers

    def __len__(self):
        return self.workers

    def __getitem__(self, w):
        before = smaps_kb()
        cpu0 = time.process_time()
        paths, labels, sources = self.ds.paths, self.ds.labels, self.ds.sources
        total = 0
        for i in range(len(paths)):
            total += len(paths[i]) + labels[i] + sources[i]
        cpu = time.process_time() - cpu0
        after = smaps_kb()
        return {"before": before, "after": after, "cpu_s": cpu, "checksum": total}


def measure(ds, workers: int) -> dict:
    loader = DataLoader(Toucher(ds, workers), batch_size=None, num_workers=workers, shuffle=False)
    t0 = time.perf_counter()
    results = list(loader)
    wall = time.perf_counter() - t0
    added = [r["after"]["uss"] - r["before"]["uss"] for r in results]
    assert len({r["checksum"] for r in results}) == 1
    return {
        "uss_added_mb": [round(a / 1024, 1) for a in added],
        "uss_added_mb_mean": round(float(np.mean(added)) / 1024, 1),
        "uss_after_mb_mean": round(float(np.mean([r["after"]["uss"] for r in results])) / 1024, 1),
        "pss_after_mb_mean": round(float(np.mean([r["after"]["pss"] for r in results])) / 1024, 1),
        "touch_cpu_s_mean": round(float(np.mean([r["cpu_s"] for r in results])), 2),
        "wall_s": round(wall, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = get_cfg()
    cfg.DATA.TARGET_FPS = 0
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 1
    cfg.TEST.NUM_SPATIAL_CROPS = 1

    rss0 = smaps_kb()["rss"]
    ds = FakeKinetics(cfg, args.videos)
    packed_mb = (ds.paths.nbytes + ds.labels.nbytes + ds.sources.nbytes) / 2**20
    build_rss_mb = (smaps_kb()["rss"] - rss0) / 1024
    out = {
        "videos": args.videos,
        "workers": args.workers,
        "sources": len(ds.source_names),
        "packed_index_mb": round(packed_mb, 1),
        "parent_rss_growth_building_packed_mb": round(build_rss_mb, 1),
        "packed": measure(ds, args.workers),
    }
    # The former layout, from the same entries: lists of str / int in the parent.
    lists = {"paths": list(ds.paths), "labels": list(ds.labels), "sources": list(ds.sources)}
    for k, v in lists.items():
        setattr(ds, k, v)
    out["lists"] = measure(ds, args.workers)
    out.update(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        load_1min=round(os.getloadavg()[0], 2),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        parent_max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    for name in ("lists", "packed"):
        m = out[name]
        print(
            f"{name:7s}: USS added per worker by reading every entry {m['uss_added_mb_mean']:7.1f} MB "
            f"(each: {m['uss_added_mb']}), worker USS after {m['uss_after_mb_mean']:.1f} MB, "
            f"PSS after {m['pss_after_mb_mean']:.1f} MB, CPU {m['touch_cpu_s_mean']:.2f} s per worker"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
