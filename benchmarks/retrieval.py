#!/usr/bin/env python
"""Time the retrieval search on a UCF-101-sized problem (run by hand).

3,783 test queries x 9,537 training videos (UCF-101 split 1), 512-d L2-normalised features,
top-50 neighbours: ascnet.utils.search.knn with RETRIEVAL.BACKEND faiss and torch, on
CPU and (when available) GPU, plus the full-ranking mAP. Results go to docs/benchmarks.md under
"## Retrieval search".

    python benchmarks/retrieval.py [--repeats 3] [--threads N]
"""
import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from ascnet.evaluation.metrics import retrieval_map
from ascnet.utils.search import knn


def _time(fn, repeats, sync=False):
    fn()  # warm-up (faiss/BLAS initialisation, CUDA context)
    ts = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=3783)
    p.add_argument("--gallery", type=int, default=9537)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(args.queries, args.dim, generator=g), dim=1)
    x = F.normalize(torch.randn(args.gallery, args.dim, generator=g), dim=1)
    ql = torch.randint(0, 101, (args.queries,), generator=g)
    xl = torch.randint(0, 101, (args.gallery,), generator=g)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    print(f"problem: {args.queries} queries x {args.gallery} gallery, {args.dim}-d, top-{args.k}; median of {args.repeats}")
    rows = []
    ref = knn(q, x, args.k, backend="torch")[1]
    for backend in ("faiss", "torch"):
        t = _time(lambda: knn(q, x, args.k, backend=backend), args.repeats)
        same = torch.equal(knn(q, x, args.k, backend=backend)[1], ref)
        rows.append(("cpu", backend, t, same))
    if torch.cuda.is_available():
        qg, xg = q.cuda(), x.cuda()
        for backend in ("faiss", "torch"):
            t = _time(lambda: knn(qg, xg, args.k, backend=backend), args.repeats, sync=True)
            same = torch.equal(knn(qg, xg, args.k, backend=backend)[1].cpu(), ref)
            rows.append(("cuda", backend, t, same))
    t_map = _time(lambda: retrieval_map(q, x, ql, xl), max(1, args.repeats // 2))
    print(f"| device | backend | top-{args.k} search (s) | same neighbours as torch/cpu |")
    print("|---|---|---|---|")
    for dev, b, t, same in rows:
        print(f"| {dev} | {b} | {t:.3f} | {'yes' if same else 'NO'} |")
    print(f"| cpu | mAP (full ranking, torch) | {t_map:.3f} | - |")


if __name__ == "__main__":
    main()
