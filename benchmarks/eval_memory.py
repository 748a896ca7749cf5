#!/usr/bin/env python
"""Peak memory per rank of an evaluation feature extraction at Kinetics-400 scale.

    python benchmarks/eval_memory.py --videos 240000 --views 10 --dim 512 --world 2 [--per-view]

A synthetic index (``--videos`` entries, no files: each item is a (V, 1, 1, 1, 1) clip) and a
stand-in backbone (a fixed 1 -> D linear map), so the run measures the evaluation path itself:
the loader, :func:`ascnet.evaluation.inference.inference_on_dataset`, the gather of the features
across ``--world`` gloo processes and their ordering. Pooled (default): the retrieval protocol,
:func:`ascnet.evaluation.retrieval.extract_video_features` (the mean of the L2-normalised views,
(N, D) gathered); ``--per-view``: the cached linear probe's (N, V, D).

Each rank reports its resident memory before the extraction, its peak (``ru_maxrss``) after,
and CPU / wall time. Whichever ``ascnet`` is on the path is measured: run it once with an older
checkout first on ``PYTHONPATH`` for a before/after pair in one sitting.
"""
import argparse
import json
import os
import resource
import socket
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class SyntheticIndex(torch.utils.data.Dataset):
    """``videos`` entries of (V, 1, 1, 1, 1) float clips whose value is the video index."""

    def __init__(self, videos: int, views: int):
        self.videos, self.views = videos, views

    def __len__(self):
        return self.videos

    def __getitem__(self, i):
        return {"clips": torch.full((self.views, 1, 1, 1, 1), float(i)), "index": i, "label": i % 400}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rank(rank, args, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.world)
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1, args.dim)).eval()
    ds = SyntheticIndex(args.videos, args.views)
    before = _rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.per_view:
        from ascnet.evaluation.inference import inference_on_dataset

        def fn(batch):
            x = batch["clips"]
            n, v = x.shape[:2]
            return {"feats": backbone(x.flatten(0, 1)).view(n, v, -1)}

        out = inference_on_dataset(fn, ds, args.batch_size)
        feats, labels = out["feats"], out["label"]
    else:
        from ascnet.evaluation.retrieval import extract_video_features

        feats, labels = extract_video_features(backbone, ds, args.batch_size)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert feats.shape[0] == args.videos and labels.tolist()[:3] == [0, 1, 2][: min(3, args.videos)]
    result = {"rank": rank, "rss_before_mib": before, "peak_rss_mib": peak, "wall_s": wall, "cpu_s": cpu,
              "result_mib": feats.numel() * feats.element_size() / 2**20}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=240000)
    p.add_argument("--views", type=int, default=10)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=512, help="global videos per step")
    p.add_argument("--per-view", action="store_true", help="gather (N, V, D) (the cached probe), not pooled")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_rank, args=(args, port, d), nprocs=args.world, join=True)
        ranks = [json.load(open(os.path.join(d, f"rank{r}.json"))) for r in range(args.world)]
    import ascnet

    print(json.dumps({"ascnet": os.path.dirname(ascnet.__file__), "args": vars(args), "ranks": ranks}, indent=1))
    for r in ranks:
        print(f"rank {r['rank']}: result {r['result_mib']:.0f} MiB, RSS before {r['rss_before_mib']:.0f} MiB, "
              f"peak {r['peak_rss_mib']:.0f} MiB (+{r['peak_rss_mib'] - r['rss_before_mib']:.0f}), "
              f"wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s")


if __name__ == "__main__":
    main()
