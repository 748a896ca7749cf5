#!/usr/bin/env python
"""Decode every video of a dataset once and report the bad ones.

Examples::

    # the training split of a config
    python tools/check_dataset.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml
    # another split / dataset, with overrides, report written elsewhere
    python tools/check_dataset.py --cfg configs/UCF101/ASCNet_R3D18_finetune.yaml --split test --dataset UCF101 \\
        --out /tmp/ucf_report.json DATA.SPLIT_ID 2
    # a quick header-only pass (open + stream info, no frame decoding)
    python tools/check_dataset.py --cfg X.yaml --probe-only
    # Kinetics-400 on a 32-core node
    python tools/check_dataset.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml --workers 32
    # what would be checked, without reading a video
    python tools/check_dataset.py --cfg configs/UCF101/ASCNet_R3D18_finetune.yaml --dry-run

A video is bad when it is missing (an annotated video without a file, listed by name),
empty, unreadable, truncated (fewer decodable frames than its header promises), smaller than
the crop (DATA.CROP_SIZE / TEST_CROP_SIZE, the smaller one) on a side, or shorter than a clip under DATA.SHORT_VIDEO_POLICY "fail" (the largest
playback speed of DATA.SPEEDS is used). The report (JSON, default
``<OUTPUT_DIR>/dataset_check_<dataset>_<split>.json``) lists every bad path with its reason;
a summary is printed. Exit status 1 when a video is bad.
"""
import argparse
import functools
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Dict

import torch
from tqdm import tqdm

from ascnet.data.build import DATASET_REGISTRY
from ascnet.data.check import check_video
from ascnet.data.utils import AnnotationError
from ascnet.config import misplaced_options
from ascnet.engine.plugins import load_config
from ascnet.utils.io import atomic_write_bytes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", required=True, help="config file")
    p.add_argument("--split", default=None, help="split to check (default TRAIN.SPLIT)")
    p.add_argument("--dataset", default=None, help="dataset name (default TRAIN.DATASET)")
    p.add_argument("--out", default=None, help="JSON report path")
    p.add_argument("--probe-only", action="store_true", help="open each file and read its header only")
    p.add_argument("--workers", type=int, default=1, help="decoding processes (e.g. the number of cores)")
    p.add_argument("--dry-run", action="store_true", help="print what would be checked and exit; reads no video")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args(argv)
    late = misplaced_options(p, args.opts)
    if late:
        p.error(f"{' '.join(late)}: options go before the KEY VALUE overrides (everything after the first "
                "override is read as overrides).")
    torch.set_num_threads(1)
    cfg = load_config(args.cfg, args.opts)
    name = args.dataset or cfg.TRAIN.DATASET
    split = args.split or cfg.TRAIN.SPLIT
    if args.dry_run:
        DATASET_REGISTRY.get(name)  # an unknown dataset fails here, with the registered names
        print(f"# dry run: would check {name}/{split} under DATA.PATH_TO_DATA_DIR {cfg.DATA.PATH_TO_DATA_DIR!r}. "
              "Nothing was read.")
        return 0
    try:
        ds = DATASET_REGISTRY.get(name)(cfg, split, "train")
    except (AnnotationError, FileNotFoundError) as e:  # one line naming the file (and line)
        print(f"Dataset error: {e}", file=sys.stderr)
        return 2
    stride = max(cfg.DATA.SPEEDS) * cfg.DATA.SAMPLING_RATE
    needed = (cfg.DATA.NUM_FRAMES - 1) * stride + 1 if cfg.DATA.SHORT_VIDEO_POLICY == "fail" else 0
    bad, t0 = [], time.time()
    check = functools.partial(check_video, needed=needed, target_fps=cfg.DATA.TARGET_FPS, probe_only=args.probe_only,
                              min_size=min(cfg.DATA.CROP_SIZE, cfg.DATA.TEST_CROP_SIZE))
    progress = dict(total=len(ds.paths), desc=f"Checking {name}/{split}", unit="video")
    if args.workers > 1:
        # One process per core, each decoding on one thread (FFmpeg's own threading is slower
        # on a shared machine); imap keeps the report in dataset order.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"  # like DataLoader workers
        with mp.get_context(method).Pool(args.workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            results = list(tqdm(pool.imap(check, ds.paths, chunksize=4), **progress))
    else:
        results = [check(p) for p in tqdm(ds.paths, **progress)]
    # Annotated videos the dataset left out because no file matches them (Kinetics' official
    # layout), then every video that fails the check.
    bad = [{"path": m, "reason": "missing"} for m in getattr(ds, "missing_videos", [])]
    bad += [r for r in results if r is not None]
    total = len(ds.paths) + len(getattr(ds, "missing_videos", []))
    reasons: Dict[str, int] = {}
    for r in bad:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    report = {
        "dataset": name,
        "split": split,
        "root": cfg.DATA.PATH_TO_DATA_DIR,
        "videos": total,
        "bad": len(bad),
        "bad_ratio": len(bad) / max(total, 1),
        "reasons": reasons,
        "probe_only": args.probe_only,
        "frames_needed": needed,
        "seconds": round(time.time() - t0, 2),
        "bad_videos": bad,
    }
    out = args.out or os.path.join(cfg.OUTPUT_DIR, f"dataset_check_{name}_{split}.json")
    atomic_write_bytes(out, json.dumps(report, indent=1).encode("utf-8"))
    print(f"{name}/{split}: {total} videos, {len(bad)} bad ({report['bad_ratio']:.2%}) {reasons}")
    for r in bad[:20]:
        print(f"  {r['reason']:>10}  {r['path']}")
    if len(bad) > 20:
        print(f"  ... {len(bad) - 20} more")
    print(f"Report: {out}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
