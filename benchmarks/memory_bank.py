"""Memory-bank top-1 search: torch (chunked matmul + masked max) vs faiss, by query batch size.

Times ``RingMemoryBank.search`` (own-video exclusion included) with each backend on a full bank,
plus the raw lookups underneath (faiss ``knn`` k=1 / GPU brute force, torch matmul + max) for
reference. The ``auto`` rule of ``MEMORY_BANK.SEARCH`` follows these numbers; append the printed
table to docs/benchmarks.md under "## Memory-bank search" with the machine and date.

Usage:
    python benchmarks/memory_bank.py                      # CPU, K=32768, d=256
    python benchmarks/memory_bank.py --device cuda        # GPU (faiss GPU path if faiss-gpu)
    python benchmarks/memory_bank.py --batches 64 256 --repeats 20
"""
import argparse
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from ascnet.config import get_cfg
from ascnet.modeling.memory_bank import RingMemoryBank
from ascnet.utils.search import faiss_available, faiss_has_gpu, knn_search


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # On a shared machine the process CPU time (all threads) is the least disturbed measure of
    # the work done on CPU; the median wall time shows what the loaded machine delivered.
    return statistics.median(cpu) * 1e3, statistics.median(wall) * 1e3


def _bank(backend, size, dim, chunk, device, app, mot, vid):
    cfg = get_cfg()
    cfg.MEMORY_BANK.SIZE = size
    cfg.MEMORY_BANK.SEARCH = backend
    cfg.MEMORY_BANK.CHUNK_SIZE = chunk
    bank = RingMemoryBank(cfg, dim).to(device)
    bank.enqueue(app, mot, vid)
    return bank


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--size", type=int, default=32768, help="bank entries K")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--chunk", type=int, default=8192, help="MEMORY_BANK.CHUNK_SIZE")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch/faiss threads (0 = default)")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda asked but no GPU is visible.")
    if args.threads:
        torch.set_num_threads(args.threads)
        if faiss_available():
            import faiss

            faiss.omp_set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    app = F.normalize(torch.randn(args.size, args.dim, generator=g), dim=1).to(device)
    mot = torch.randn(args.size, args.dim, generator=g).to(device)
    # ~8 entries per video, as a bank that has seen a small dataset several times
    vid = torch.randint(0, args.size // 8, (args.size,), generator=g).to(device)
    banks = {"torch": _bank("torch", args.size, args.dim, args.chunk, device, app, mot, vid)}
    if faiss_available():
        banks["faiss"] = _bank("faiss", args.size, args.dim, args.chunk, device, app, mot, vid)
    gpu_note = ""
    if device.type == "cuda" and not faiss_has_gpu():
        gpu_note = " (faiss has no GPU support here: its column is a CPU search with host copies)"

    print(f"# {platform.node()} | {platform.processor() or platform.machine()} | torch {torch.__version__} | "
          f"threads {torch.get_num_threads()} | device {device}{gpu_note}")
    print(f"# K={args.size} d={args.dim} chunk={args.chunk}, ms per search: CPU time (wall time), medians of {args.repeats} runs")
    cols = ["bank torch", "bank faiss", "raw matmul+max", "raw faiss knn k=1"]
    print("| queries | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for b in args.batches:
        q = F.normalize(torch.randn(b, args.dim, generator=g), dim=1).to(device)
        qvid = torch.randint(0, args.size // 8, (b,), generator=g).to(device)
        row = [_time(lambda: banks["torch"].search(q, qvid), device, args.repeats)]
        if "faiss" in banks:
            i_t, _ = banks["torch"].search(q, qvid)
            i_f, _ = banks["faiss"].search(q, qvid)
            agree = (i_t == i_f).float().mean().item()
            if agree < 1.0:
                print(f"# warning: backends agree on {agree:.3%} of the rows at batch {b} (ties?)")
            row.append(_time(lambda: banks["faiss"].search(q, qvid), device, args.repeats))
        else:
            row.append((float("nan"), float("nan")))
        row.append(_time(lambda: (q @ app.T).max(dim=1), device, args.repeats))
        if faiss_available():
            row.append(_time(lambda: knn_search(q, app, 1), device, args.repeats))
        else:
            row.append((float("nan"), float("nan")))
        print(f"| {b} | " + " | ".join(f"{t[0]:.1f} ({t[1]:.1f})" for t in row) + " |")


if __name__ == "__main__":
    main()
