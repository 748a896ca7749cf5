#!/usr/bin/env python
"""Throughput of the pretraining data pipeline on ONE core.

Measures, on the generated dataset (H.264 by default, 128 px frames, 16 x 112 clips, speeds
1 and 2, TARGET_FPS 25):

1. pipeline: the full pretraining loader path (decode both speeds, augmentation, collate),
   ``num_workers=0`` so everything runs in this pinned process;
2. decode: a plain PyAV decode of the same frames (open, decode forward from the start, convert
   only the needed frames to RGB on one thread), with the same clip starts;
3. augmentation: the training augmentation alone on the already-decoded clips (same seeds).

Prints samples/s of each and the ratio ``pipeline_time / (decode_time + aug_time)`` (target
<= 1.25: the pipeline adds little beyond its two unavoidable parts). Also checks that the colour
ops see the cropped clip (crop first). Run by hand; append the output to docs/benchmarks.md
under "## Data throughput".

Example::

    python benchmarks/data_throughput.py --samples 96 --core 1
"""
import argparse
import os
import platform
import tempfile
import time

import av
import numpy as np
import torch

from ascnet.config import get_cfg
from ascnet.data import build_loader
from ascnet.data.decoder import decode_clips
from ascnet.data.utils import derive_seed


def plain_pyav_decode(path: str, clip_indices) -> list:
    """Reference decode: PyAV from the first frame, converting only the needed frames."""
    wanted = sorted({int(i) for c in clip_indices for i in c.tolist()})
    wanted_set, last, frames = set(wanted), wanted[-1], {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for k, frame in enumerate(container.decode(stream)):
            if k in wanted_set:
                frames[k] = frame.reformat(format="rgb24", threads=1).to_ndarray()
            if k >= last:
                break
    return [torch.from_numpy(np.stack([frames[int(i)] for i in c.tolist()])).permute(0, 3, 1, 2) for c in clip_indices]


class Recorder(torch.nn.Module):
    """Wraps a transform and records the spatial size of what it receives."""

    def __init__(self, op, sizes):
        super().__init__()
        self.op, self.sizes = op, sizes

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.op(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "ascnet_bench_synthetic_128"))
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--core", type=int, default=0, help="CPU core to pin to")
    p.add_argument("--format", default=".mp4", choices=[".mp4", ".avi"])
    p.add_argument("--repeats", type=int, default=3, help="passes over the samples")
    args = p.parse_args()

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)

    cfg = get_cfg()
    cfg.TRAIN.DATASET = "Synthetic"
    cfg.DATA.PATH_TO_DATA_DIR = args.data_dir
    cfg.DATA.SYNTHETIC.SIZE = 128
    cfg.DATA.SYNTHETIC.NUM_FRAMES = 64
    cfg.DATA.SYNTHETIC.VIDEOS_PER_CLASS = 16
    cfg.DATA.SYNTHETIC.FORMAT = args.format
    cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE, cfg.DATA.TARGET_FPS = 16, 112, 25
    cfg.ASCNET.SPEEDS = [1, 2]
    cfg.TRAIN.BATCH_SIZE = args.batch
    cfg.DATA_LOADER.NUM_WORKERS = 0

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    loader = build_loader(cfg, "train", "pretrain")
    ds = loader.dataset
    loader.sampler.set_epoch(0)
    keys = list(loader.sampler)[: args.samples // args.batch * args.batch]
    n = len(keys)

    # Crop first: every op after the crop must see CROP_SIZE x CROP_SIZE frames.
    sizes = []
    compose = ds.transform.transform
    ops = list(compose.transforms)
    compose.transforms = [ops[0]] + [Recorder(o, sizes) for o in ops[1:]]
    ds[keys[0]]
    compose.transforms = ops
    crop_first = bool(sizes) and all(s == (cfg.DATA.CROP_SIZE,) * 2 for s in sizes)

    # Same clip starts and frames as the pipeline: replay its sampler with the same seeds.
    plans = []
    for index, seed in keys:
        s = derive_seed(seed, 0)
        g = torch.Generator()
        g.manual_seed(derive_seed(s, 0))
        clips, info = decode_clips(ds.paths[index], ds.clip_sampler, g)
        g.manual_seed(derive_seed(s, 0))
        plans.append((ds.paths[index], ds.clip_sampler(info.num_frames, info.fps, g), clips, s))

    # Interleaved, batch by batch: the three parts see the same machine load. CPU time of this
    # process (time.process_time) is the primary measure, since the machine may be shared; wall
    # time is printed beside it.
    totals = {k: [0.0, 0.0] for k in ("pipeline", "decode", "aug")}

    def timed(name, fn):
        c, w = time.process_time(), time.perf_counter()
        fn()
        totals[name][0] += time.process_time() - c
        totals[name][1] += time.perf_counter() - w

    for _ in range(args.repeats):
        it = iter(loader)
        for b in range(n // args.batch):
            chunk = plans[b * args.batch : (b + 1) * args.batch]
            timed("pipeline", lambda: next(it))
            timed("decode", lambda: [plain_pyav_decode(path, idx) for path, idx, _, _ in chunk])
            timed("aug", lambda: [ds.transform(c, derive_seed(s, 1 + k)) for _, _, clips, s in chunk for k, c in enumerate(clips)])
    total = n * args.repeats
    ratio = totals["pipeline"][0] / (totals["decode"][0] + totals["aug"][0])
    ratio_wall = totals["pipeline"][1] / (totals["decode"][1] + totals["aug"][1])
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, 1 pinned core (core {args.core}), torch {torch.__version__}, PyAV {av.__version__}")
    print(f"data: generated {args.format} 128x128, 64 frames @25 fps; clips 2 speeds x 16 x 112 px; {n} samples x {args.repeats} passes, batch {args.batch}")
    print(f"load average before the run: {load_before}")
    for name in ("pipeline", "decode", "aug"):
        cpu_s, wall_s = totals[name]
        print(
            f"{name:>9}: {total / cpu_s:7.1f} samples/s CPU time ({1000 * cpu_s / total:6.2f} ms/sample), "
            f"{total / wall_s:7.1f} samples/s wall"
        )
    print(f"ratio pipeline / (decode + aug) = {ratio:.3f} CPU time, {ratio_wall:.3f} wall  (target <= 1.25)")
    print(f"colour ops run on the {cfg.DATA.CROP_SIZE}px crop: {crop_first}")


if __name__ == "__main__":
    main()
