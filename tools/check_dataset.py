#!/usr/bin/env python
"""Decode every video of a dataset once and report the bad ones.

Examples::

    # the training split of a config
    python tools/check_dataset.py --cfg configs/Kinetics/ASCNet_R3D18.yaml
    # another split / dataset, with overrides, report written elsewhere
    python tools/check_dataset.py --cfg configs/UCF101/finetune.yaml --split test --dataset UCF101 \
        --out /tmp/ucf_report.json DATA.SPLIT_ID 2
    # a quick header-only pass (open + stream info, no frame decoding)
    python tools/check_dataset.py --cfg X.yaml --probe-only

A video is bad when it is missing, empty, unreadable, truncated (fewer decodable frames than
its header promises), or shorter than a clip under DATA.SHORT_VIDEO_POLICY "fail" (the largest
playback speed of ASCNET.SPEEDS is used). The report (JSON, default
``<OUTPUT_DIR>/dataset_check_<dataset>_<split>.json``) lists every bad path with its reason;
a summary is printed. Exit status 1 when a video is bad.
"""
import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ascnet.config import load_config  # noqa: E402
from ascnet.data.build import DATASET_REGISTRY  # noqa: E402
from ascnet.data.decoder import VideoDecodeError, decode_all, probe_video  # noqa: E402
from ascnet.sampling.clip import resampled_length  # noqa: E402
from ascnet.utils.io import atomic_write_bytes  # noqa: E402


def check_video(path: str, needed: int, target_fps: float, probe_only: bool = False) -> Optional[Dict[str, Any]]:
    """None when the video is fine, else ``{"path", "reason", ...}``.

    Args:
        path: the video.
        needed: resampled frames the longest clip needs (``(NUM_FRAMES - 1) * stride + 1``);
            0 skips the length check.
        target_fps: DATA.TARGET_FPS (0 = native).
        probe_only: read the header only.
    """
    try:
        if probe_only:
            info = probe_video(path)
            decoded = info.num_frames
        else:
            frames, info = decode_all(path)
            decoded = int(frames.shape[0])
            # Headers may round the count by a frame or two; more missing frames = truncated.
            if decoded < info.num_frames - 2:
                return {"path": path, "reason": "truncated", "frames": decoded, "header_frames": info.num_frames}
    except VideoDecodeError as e:
        return {"path": path, "reason": "unreadable", "error": str(e)}
    length = resampled_length(decoded, info.fps, target_fps)
    if needed and length < needed:
        return {"path": path, "reason": "too_short", "frames": length, "needed": needed, "fps": info.fps}
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", required=True, help="config file")
    p.add_argument("--split", default=None, help="split to check (default TRAIN.SPLIT)")
    p.add_argument("--dataset", default=None, help="dataset name (default TRAIN.DATASET)")
    p.add_argument("--out", default=None, help="JSON report path")
    p.add_argument("--probe-only", action="store_true", help="open each file and read its header only")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.cfg, args.opts)
    name = args.dataset or cfg.TRAIN.DATASET
    split = args.split or cfg.TRAIN.SPLIT
    ds = DATASET_REGISTRY.get(name)(cfg, split, "train")
    stride = max(cfg.ASCNET.SPEEDS) * cfg.DATA.SAMPLING_RATE
    needed = (cfg.DATA.NUM_FRAMES - 1) * stride + 1 if cfg.DATA.SHORT_VIDEO_POLICY == "fail" else 0
    bad, t0 = [], time.time()
    for path in tqdm(ds.paths, desc=f"Checking {name}/{split}", unit="video"):
        r = check_video(path, needed, cfg.DATA.TARGET_FPS, args.probe_only)
        if r is not None:
            bad.append(r)
    reasons: Dict[str, int] = {}
    for r in bad:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    report = {
        "dataset": name,
        "split": split,
        "root": cfg.DATA.PATH_TO_DATA_DIR,
        "videos": len(ds.paths),
        "bad": len(bad),
        "bad_ratio": len(bad) / max(len(ds.paths), 1),
        "reasons": reasons,
        "probe_only": args.probe_only,
        "frames_needed": needed,
        "seconds": round(time.time() - t0, 2),
        "bad_videos": bad,
    }
    out = args.out or os.path.join(cfg.OUTPUT_DIR, f"dataset_check_{name}_{split}.json")
    atomic_write_bytes(out, json.dumps(report, indent=1).encode("utf-8"))
    print(f"{name}/{split}: {len(ds.paths)} videos, {len(bad)} bad ({report['bad_ratio']:.2%}) {reasons}")
    for r in bad[:20]:
        print(f"  {r['reason']:>10}  {r['path']}")
    if len(bad) > 20:
        print(f"  ... {len(bad) - 20} more")
    print(f"Report: {out}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
