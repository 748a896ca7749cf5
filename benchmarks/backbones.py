#!/usr/bin/env python
"""Forward+backward step time of each built-in backbone (batch 2), on the current machine.

    python benchmarks/backbones.py [--threads 1] [--repeats 3]

Prints a markdown table (median of --repeats steps after one warm-up step) to paste under
"## Backbones" in docs/benchmarks.md. Sizes: the paper's 3x16x112x112 and the tests' 3x8x64x64.
Both the process CPU time and the wall time of a step are reported: on a machine shared with
other jobs the wall time depends on their load, while the CPU time of a single-threaded step
does not (much), so it is the primary measure there.
"""
import argparse
import statistics
import time

import torch

from ascnet.config import get_cfg
from ascnet.modeling import build_backbone


def step_time(model: torch.nn.Module, shape, repeats: int):
    """Median (CPU seconds, wall seconds) of a forward+backward step on a random batch."""
    x = torch.randn(*shape)
    cpu, wall = [], []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        c0, t0 = time.process_time(), time.perf_counter()
        model(x).pow(2).mean().backward()
        if i:  # the first step is a warm-up
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 2, median of {args.repeats} steps")
    print("| backbone | 3x16x112x112 CPU s | wall s | 3x8x64x64 CPU s | wall s |")
    print("|---|---|---|---|---|")
    for name in ("R3D18", "R2Plus1D18", "S3DG"):
        cfg = get_cfg()
        cfg.MODEL.BACKBONE.NAME = name
        model = build_backbone(cfg).train()
        big = step_time(model, (2, 3, 16, 112, 112), args.repeats)
        small = step_time(model, (2, 3, 8, 64, 64), args.repeats)
        print(f"| `{name}` | {big[0]:.2f} | {big[1]:.2f} | {small[0]:.3f} | {small[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
