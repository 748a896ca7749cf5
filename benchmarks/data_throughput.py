#!/usr/bin/env python
"""CPU cost of the pretraining loader per sample, on ONE pinned core.

Pretraining samples: 2 speeds (DATA.SPEEDS [1, 2]) x 16 frames, 112 px crops, TARGET_FPS 25,
augmentation on the device (``AUG.DEVICE device``, the default). Measured with
``os.sched_setaffinity`` to one core and ``time.process_time`` (CPU time of this process, the
measure that survives a shared machine; wall time is printed beside it):

- ``loader``: everything the loader does per sample in device-augmentation mode (decode at
  ``AUG.LOAD_SIZE`` with the scaling in the YUV->RGB pass, parameter draws, collate),
  ``num_workers=0`` so it all runs in this process;
- ``loader (AUG.DEVICE loader)``: the same with the augmentation applied in the loader (what a
  sample cost before the split);
- ``decode``: a plain PyAV decode of the same frames to RGB at the video's own size (seek to
  the key frame before the clip, decode forward, convert only the needed frames);
- ``augment``: the batched device augmentation (``BatchAugment``) per sample on this CPU core,
  and on CUDA when present (wall time, synchronised).

Data: (a) the generated dataset (H.264 ``.mp4``, 128x128, 64 frames at 25 fps); (b)
Kinetics-like videos generated here (H.264 340x256, 10 s at 30 fps, libx264's default GOP,
camera pan over a textured scene with moving objects), in the official Kinetics layout, before
and after ``tools/prepare_dataset.py --short-side 128 --fps 25 --gop 16``.

The last line is one JSON object; ``loader_ms_per_sample`` and ``decode_ms_per_sample`` are
those of (a). Example::

    python benchmarks/data_throughput.py --core 1
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

import av
import numpy as np
import torch

from ascnet.config import get_cfg
from ascnet.data import build_loader
from ascnet.data.batch_augment import build_batch_augment
from ascnet.data.decoder import decode_clips
from ascnet.data.utils import derive_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plain_decode(path: str, clip_indices) -> list:
    """Reference decode at the video's own size: seek, decode forward, convert needed frames."""
    wanted = sorted({int(i) for c in clip_indices for i in c.tolist()})
    wanted_set, first, last, frames = set(wanted), wanted[0], wanted[-1], {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps, tb = float(stream.average_rate), stream.time_base
        start = stream.start_time or 0
        if first >= 32:
            container.seek(start + int(first / fps / tb), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            k = int(round(float((frame.pts - start) * tb) * fps))
            if k in wanted_set:
                frames[k] = frame.reformat(format="rgb24", threads=1).to_ndarray()
            if k >= last:
                break
    return [np.stack([frames.get(int(i), frames[max(frames)]) for i in c.tolist()]) for c in clip_indices]


def base_cfg(dataset: str, root: str, batch: int, device: str = "device"):
    cfg = get_cfg()
    cfg.TRAIN.DATASET = dataset
    cfg.DATA.PATH_TO_DATA_DIR = root
    cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE, cfg.DATA.TARGET_FPS = 16, 112, 25
    cfg.DATA.SPEEDS = [1, 2]
    cfg.TRAIN.BATCH_SIZE = batch
    cfg.DATA_LOADER.NUM_WORKERS = 0
    cfg.AUG.DEVICE = device
    return cfg


def measure(name: str, cfg, samples: int, batch: int, repeats: int) -> dict:
    """Loader (device and loader augmentation), plain decode and batched augmentation, interleaved
    batch by batch so that all parts see the same machine load."""
    loader = build_loader(cfg, "train", "pretrain")
    cfg_l = cfg.clone()
    cfg_l.AUG.DEVICE = "loader"
    loader_l = build_loader(cfg_l, "train", "pretrain")
    ds = loader.dataset
    aug = build_batch_augment(cfg)
    totals = {k: [0.0, 0.0] for k in ("loader", "loader_aug", "decode", "augment")}

    def timed(key, fn):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        totals[key][0] += time.process_time() - c
        totals[key][1] += time.perf_counter() - w
        return out

    n_batches = min(max(samples // batch, 1), len(loader))
    for r in range(repeats):  # one epoch ordering per pass: other videos and clip positions
        loader.sampler.set_epoch(r)
        loader_l.sampler.set_epoch(r)
        keys = list(loader.sampler)[: n_batches * batch]
        plans = []
        for index, seed in keys:  # the pipeline's clip choices, replayed with the same seeds
            g = torch.Generator()
            g.manual_seed(derive_seed(derive_seed(seed, 0), 0))
            _, info = decode_clips(ds.paths[index], ds.clip_sampler, g)
            g.manual_seed(derive_seed(derive_seed(seed, 0), 0))
            plans.append((ds.paths[index], ds.clip_sampler(info.num_frames, info.fps, g)))
        it, it_l = iter(loader), iter(loader_l)
        for b in range(n_batches):
            chunk = plans[b * batch : (b + 1) * batch]
            out = timed("loader", lambda: next(it))
            timed("loader_aug", lambda: next(it_l))
            timed("decode", lambda: [plain_decode(p, idx) for p, idx in chunk])
            with torch.no_grad():
                timed("augment", lambda: aug(out["clips"], out["aug"]))
    total = n_batches * batch * repeats
    res = {k: {"cpu_ms": 1000 * v[0] / total, "wall_ms": 1000 * v[1] / total} for k, v in totals.items()}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        aug_c = aug.to(dev)
        batch_c = {"clips": out["clips"].pin_memory(), "aug": out["aug"]}
        with torch.no_grad():
            for _ in range(3):
                aug_c(batch_c["clips"].to(dev, non_blocking=True), batch_c["aug"])
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(20):
                aug_c(batch_c["clips"].to(dev, non_blocking=True), batch_c["aug"])
            torch.cuda.synchronize()
        res["augment_cuda"] = {"wall_ms": 1000 * (time.perf_counter() - t) / (20 * batch)}
    res["samples"] = total
    res["frame_size"] = list(out["clips"].shape[-3:-1])
    print(f"\n[{name}] {total} samples ({n_batches * batch} x {repeats} passes), batch {batch}; loaded frames "
          f"{tuple(out['clips'].shape[-4:-1])} (T, H, W), {ds.paths[0]}")
    labels = {"loader": "loader (AUG.DEVICE device)", "loader_aug": "loader (AUG.DEVICE loader)",
              "decode": "plain decode, own size", "augment": "batched augmentation (CPU)"}
    for k, label in labels.items():
        print(f"  {label:<30} {res[k]['cpu_ms']:7.2f} ms/sample CPU  ({res[k]['wall_ms']:7.2f} wall)")
    if "augment_cuda" in res:
        print(f"  {'batched augmentation (CUDA)':<30} {res['augment_cuda']['wall_ms']:7.3f} ms/sample wall")
    print(f"  loader / decode = {res['loader']['cpu_ms'] / res['decode']['cpu_ms']:.2f} (CPU time)")
    return res


def kinetics_like_frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """A textured scene panned by the camera, with two moving discs: (h, w, 3) uint8 at time t."""
    rng = np.random.default_rng(seed)
    big = np.kron(rng.integers(0, 255, (h // 16 + 8, (w + 600) // 16 + 1, 3)), np.ones((16, 16, 1)))
    fine = rng.integers(-20, 20, big.shape)
    scene = np.clip(big + fine, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for k in range(t):
        f = scene[:h, 2 * k : 2 * k + w].copy()
        for j, (cy, cx, r) in enumerate(((h / 2, w / 3, 30), (h / 3, 2 * w / 3, 20))):
            y = cy + 60 * np.sin(k / (17 + 5 * j)) ; x = cx + 80 * np.cos(k / (23 + 3 * j))
            f[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = (230, 60 + 90 * j, 40)
        out.append(f)
    return np.stack(out)


def make_kinetics_like(root: str, n: int) -> None:
    """n videos, H.264 340x256, 10 s at 30 fps, libx264's default GOP, Kinetics official layout."""
    if os.path.exists(os.path.join(root, "annotations", "train.csv")):
        return
    rows = []
    for k in range(n):
        label = ("abseiling", "air drumming")[k % 2]
        stem = f"kin{k:08d}_{k:06d}_{k + 10:06d}"
        path = os.path.join(root, "train", label, stem + ".mp4")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        frames = kinetics_like_frames(300, 256, 340, k)
        with av.open(path, mode="w") as c:
            s = c.add_stream("libx264", rate=30)  # default preset, GOP and B-frames
            s.width, s.height, s.pix_fmt = 340, 256, "yuv420p"
            for i, img in enumerate(frames):
                fr = av.VideoFrame.from_ndarray(img, format="rgb24")
                fr.pts, fr.time_base = i, Fraction(1, 30)
                for p in s.encode(fr):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        rows.append(f"{label},kin{k:08d},{k},{k + 10},train")
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", "train.csv"), "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n" + "\n".join(rows) + "\n")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "ascnet_bench_data"))
    p.add_argument("--samples", type=int, default=48, help="samples per dataset and pass")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="passes over the samples of (a)")
    p.add_argument("--kinetics-videos", type=int, default=4, help="Kinetics-like videos to generate (0: skip (b))")
    p.add_argument("--core", type=int, default=0, help="CPU core to pin to")
    args = p.parse_args(argv)

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out = {}

    cfg = base_cfg("Synthetic", os.path.join(args.work_dir, "synthetic_128"), args.batch)
    cfg.DATA.SYNTHETIC.SIZE, cfg.DATA.SYNTHETIC.NUM_FRAMES = 128, 64
    cfg.DATA.SYNTHETIC.VIDEOS_PER_CLASS, cfg.DATA.SYNTHETIC.FORMAT = 16, ".mp4"
    out["generated"] = measure("generated .mp4 128x128", cfg, args.samples, args.batch, args.repeats)

    if args.kinetics_videos > 0:
        src = os.path.join(args.work_dir, f"kinetics_like_{args.kinetics_videos}")
        dst = src + "_prepared128"
        t = time.process_time()
        make_kinetics_like(src, args.kinetics_videos)
        gen_s = time.process_time() - t
        r = subprocess.run(
            [sys.executable, os.path.join(REPO, "tools", "prepare_dataset.py"), "--dataset", "Kinetics", "--src", src,
             "--dst", dst, "--short-side", "128", "--fps", "25", "--gop", "16", "--workers", "1", "--no-progress"],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")),
        )
        if r.returncode != 0:
            raise SystemExit(f"prepare_dataset failed: {r.stderr[-2000:]}")
        report = json.load(open(os.path.join(dst, "prepare_report.json")))
        print(f"\nKinetics-like: {args.kinetics_videos} videos generated ({gen_s:.1f} s CPU, cached), prepared: "
              f"{report['encode_cpu_s']:.1f} s encode CPU for {report['transcoded']} videos "
              f"({report['skipped_finished']} already done); sizes {_du(src):.1f} MB -> {_du(dst):.1f} MB")
        kb = min(args.batch, args.kinetics_videos)
        passes = max(1, args.samples // (args.kinetics_videos // kb * kb))
        for key, root in (("kinetics_original", src), ("kinetics_prepared", dst)):
            out[key] = measure(key, base_cfg("Kinetics", root, kb), args.kinetics_videos, kb, passes)
        ratio = out["kinetics_original"]["loader"]["cpu_ms"] / out["kinetics_prepared"]["loader"]["cpu_ms"]
        print(f"\nprepared copy: {ratio:.2f}x less loader CPU per sample than the original")
        out["kinetics_prepared_gain"] = ratio

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    g = out["generated"]
    print(f"\nmachine: {cpu}, 1 pinned core (core {args.core}), torch {torch.__version__}, PyAV {av.__version__}; "
          f"load average before {load_before}, after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    summary = {
        "loader_ms_per_sample": round(g["loader"]["cpu_ms"], 3),
        "decode_ms_per_sample": round(g["decode"]["cpu_ms"], 3),
        "loader_over_decode": round(g["loader"]["cpu_ms"] / g["decode"]["cpu_ms"], 3),
        "loader_aug_in_loader_ms_per_sample": round(g["loader_aug"]["cpu_ms"], 3),
        "augment_cpu_ms_per_sample": round(g["augment"]["cpu_ms"], 3),
    }
    if "augment_cuda" in g:
        summary["augment_cuda_ms_per_sample"] = round(g["augment_cuda"]["wall_ms"], 4)
    for key in ("kinetics_original", "kinetics_prepared"):
        if key in out:
            summary[f"{key}_loader_ms_per_sample"] = round(out[key]["loader"]["cpu_ms"], 3)
            summary[f"{key}_decode_ms_per_sample"] = round(out[key]["decode"]["cpu_ms"], 3)
    if "kinetics_prepared_gain" in out:
        summary["kinetics_prepared_gain"] = round(out["kinetics_prepared_gain"], 3)
    print(json.dumps(summary))
    return summary


def _du(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6


if __name__ == "__main__":
    main()
