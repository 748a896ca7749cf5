#!/usr/bin/env python
"""Cost of a full ASCNet training iteration against its compute floor, in the same run.

* full: ``Trainer.run_step`` + ``Trainer.after_step`` on a fixed batch: online forward and
  backward, target forward, memory-bank search and enqueue, loss sum, optimiser and scheduler
  steps, EMA update, statistics transfer, logging every ``LOG_PERIOD`` (to a temporary folder);
* floor: the online network's forward + backward of the same clips through backbone,
  projections and predictors, plus the target network's forward (no bank, EMA, optimiser,
  logging).

Both are timed alternately (one full step, one floor step per round) so that load from other
processes hits both alike; medians are reported. On CPU the primary measure is the process's
CPU time (run with ``--threads 1`` on a shared machine); on CUDA the wall time between
synchronisations. Target: full / floor <= 1.15.

It also counts the host-device synchronisations of a full step with
:class:`ascnet.utils.host_sync.HostSyncCounter` (on the CPU: what the step would make on a
GPU): of one step that does not log, and per step over ``LOG_PERIOD`` steps (logging included).
``--aug`` gives the steps uint8 clips with drawn augmentation parameters (``AUG.DEVICE device``:
the batched augmentation runs in the step, on the path a GPU takes; the floor gets the
augmented clips). ``--compare OLD_REPO`` runs this script alternately on the code of
``OLD_REPO`` (e.g. a ``git worktree`` of main) and on this one, ``--repeats`` times each, and
prints before/after with their ratio.

    python benchmarks/train_step.py                                  # CPU, quickstart sizes
    python benchmarks/train_step.py --threads 1 --compare /tmp/old   # before / after, CPU
    python benchmarks/train_step.py --device cuda --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml \\
        TRAIN.BATCH_SIZE 32                                          # one GPU, paper sizes
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from ascnet.engine.plugins import load_config
from ascnet.engine.trainer import Trainer
from ascnet.modeling.meta_arch import ascnet as _ascnet  # noqa: F401  (registers ASCNet)
from ascnet.utils.events import EventWriter
from ascnet.utils.host_sync import HostSyncCounter
from ascnet.utils.logging import setup_logging

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _FixedBatches(list):
    """A stand-in 'loader': the same batches every epoch (no decoding in the measurement)."""


class BenchTrainer(Trainer):
    """The real Trainer with a loader of fixed random batches (``aug``: uint8 clips at
    ``AUG.LOAD_SIZE`` with drawn augmentation parameters, as the loader makes them)."""

    aug = False

    def build_train_loader(self, cfg):
        n = cfg.TRAIN.BATCH_SIZE
        s = len(cfg.DATA.SPEEDS)
        g = torch.Generator().manual_seed(0)
        if self.aug:
            return _FixedBatches(_aug_batch(cfg, k, g) for k in range(4))
        shape = (n, s, cfg.DATA.INPUT_CHANNEL_NUM, cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE, cfg.DATA.CROP_SIZE)
        return _FixedBatches(
            {"clips": torch.randn(shape, generator=g), "index": torch.arange(n) + k * n, "label": torch.zeros(n, dtype=torch.long)}
            for k in range(4)  # a few distinct batches: paper-size clips are 150 MB per batch
        )


def _aug_batch(cfg, k: int, g: torch.Generator) -> dict:
    from ascnet.data.batch_augment import build_param_sampler, load_size, stack_params

    n, s, side = cfg.TRAIN.BATCH_SIZE, len(cfg.DATA.SPEEDS), load_size(cfg)
    sampler = build_param_sampler(cfg)
    native = (side * 5 // 4, side * 5 // 3)  # e.g. 256 x 340 frames decoded to the load size
    aug = stack_params([sampler.draw(*native, 1000 * k + i) for i in range(n * s)], native, (side, side))
    clips = torch.randint(0, 256, (n, s, cfg.DATA.NUM_FRAMES, side, side, 3), dtype=torch.uint8, generator=g)
    return {"clips": clips, "aug": {key: v.view(n, s, *v.shape[1:]) for key, v in aug.items()},
            "index": torch.arange(n) + k * n, "label": torch.zeros(n, dtype=torch.long)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def floor_step(trainer: BenchTrainer, batch) -> None:
    """Online forward + backward of the clips, plus the target forward (the compute floor)."""
    model = trainer.model
    clips = batch["clips"].flatten(0, 1)
    with trainer.autocast():
        pred_a, pred_m = model.online(clips)
        with torch.no_grad():
            model.target(clips)
    loss = pred_a.float().pow(2).mean() + pred_m.float().pow(2).mean()
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()


@torch.no_grad()
def fill_banks(model, size: int, device) -> None:
    """Fill every memory bank with random unit vectors (video ids far from the batches')."""
    g = torch.Generator().manual_seed(1)
    for bank in getattr(model, "banks", []):
        dim = bank.appearance.shape[1]
        for start in range(0, size, 4096):
            n = min(4096, size - start)
            a = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1).to(device)
            m = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1).to(device)
            bank.enqueue(a, m, torch.arange(n, device=device) + 10**7 + start)


def count_syncs(full, trainer, k0: int, steps: int) -> list:
    """(iteration, syncs, counts) of ``steps`` full steps, each counted on its own."""
    out = []
    for j in range(steps):
        with HostSyncCounter() as syncs:
            full(k0 + j)
        out.append((trainer.iter, syncs.total, dict(syncs.counts)))
    return out


def compare(args) -> None:
    """Run this script on OLD_REPO's code and on this one, alternately, and print before/after."""
    child = [sys.executable, os.path.abspath(__file__), "--cfg", args.cfg, "--device", args.device, "--rounds",
             str(args.rounds), "--warmup", str(args.warmup), "--threads", str(args.threads), "--json"]
    child += (["--aug"] if args.aug else []) + (["--empty-bank"] if args.empty_bank else []) + list(args.opts)
    runs = {"before": [], "after": []}
    for r in range(args.repeats):
        for name, repo in (("before", os.path.abspath(args.compare)), ("after", _REPO)):
            env = dict(os.environ, PYTHONPATH=repo)
            res = subprocess.run(child, env=env, cwd=repo, capture_output=True, text=True)
            lines = [line for line in res.stdout.splitlines() if line.startswith("json: ")]
            if res.returncode or not lines:
                raise SystemExit(f"train_step on {repo} failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
            runs[name].append(json.loads(lines[-1][len("json: "):]))
            print(f"[{r + 1}/{args.repeats}] {name}: {runs[name][-1]}", flush=True)
    med = {n: {k: statistics.median(run[k] for run in v) for k in v[0] if isinstance(v[0][k], (int, float))}
           for n, v in runs.items()}
    print(f"before: {args.compare}  after: {_REPO}  ({args.repeats} alternating runs each, medians)")
    for key in ("syncs_quiet_step", "syncs_per_step", "cpu_full_ms", "cpu_floor_ms", "wall_full_ms", "ratio"):
        b, a = med["before"][key], med["after"][key]
        print(f"{key:18s} before {b:10.2f}  after {a:10.2f}  after/before {a / b if b else float('nan'):.3f}")
    print("json: " + json.dumps(med))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default=os.path.join(_REPO, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml"))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rounds", type=int, default=20, help="Timed rounds (one full + one floor step each).")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0 = torch's default).")
    p.add_argument("--empty-bank", action="store_true",
                   help="Start with empty memory banks (default: fill them first, as after the first epochs).")
    p.add_argument("--aug", action="store_true", help="uint8 clips + augmentation parameters (the step augments).")
    p.add_argument("--compare", default="", metavar="OLD_REPO", help="Before/after against the code of OLD_REPO.")
    p.add_argument("--repeats", type=int, default=3, help="--compare: alternating runs of each.")
    p.add_argument("--json", action="store_true", help="Also print the figures as one 'json: {...}' line.")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides.")
    args = p.parse_args(argv)
    if args.compare:
        return compare(args)
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = tempfile.mkdtemp(prefix="ascnet_bench_")
    dev_opts = ["NUM_GPUS", "1" if args.device == "cuda" else "0", "NUM_CPU_PROCESSES", "1"]
    # Float clips stand for a dataset that augments them itself (AUG.DEVICE loader); --aug feeds
    # uint8 clips with parameters, augmented in the step (AUG.DEVICE device).
    aug_opts = ["AUG.DEVICE", "device" if args.aug else "loader"]
    cfg = load_config(args.cfg, list(args.opts) + dev_opts + aug_opts + ["OUTPUT_DIR", tmp, "TENSORBOARD.ENABLE",
                                                                         "False", "TRAIN.AUTO_RESUME", "False"])
    setup_logging(None)
    BenchTrainer.aug = args.aug
    trainer = BenchTrainer(cfg, mode="pretrain")
    setup_logging(None)  # keep the benchmark's output short: log lines go to the console only
    trainer.writer = EventWriter(tmp, tensorboard=False)
    trainer.max_iter = 10**9  # no "last iteration" flush inside the measurement
    trainer.batch_augment.cpu_kernel = False  # on the CPU too, the path a GPU runs
    trainer.model.train()
    batches = trainer.train_loader
    floor_batches = [trainer.prepare_batch(b) for b in batches]  # augmented clips on the device
    dev = trainer.device
    if not args.empty_bank:
        fill_banks(trainer.model, int(cfg.MEMORY_BANK.SIZE), dev)

    def full(k):
        stats = trainer.run_step(batches[k % len(batches)])
        trainer.iter += 1
        trainer.epoch_iter = (trainer.epoch_iter + 1) % trainer.iters_per_epoch
        stats["time"], stats["data_time"] = 0.0, 0.0
        trainer.after_step(stats)

    import logging

    logging.getLogger("ascnet").setLevel(logging.WARNING)  # progress lines would add console I/O noise
    for k in range(args.warmup):
        full(k)
        floor_step(trainer, floor_batches[k % len(batches)])
    t_full, t_floor, c_full, c_floor = [], [], [], []
    for k in range(args.rounds):
        b = floor_batches[(k + args.warmup) % len(batches)]
        _sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        full(k + args.warmup)
        _sync(dev)
        t1, c1 = time.perf_counter(), time.process_time()
        floor_step(trainer, b)
        _sync(dev)
        t2, c2 = time.perf_counter(), time.process_time()
        t_full.append(t1 - t0)
        t_floor.append(t2 - t1)
        c_full.append(c1 - c0)
        c_floor.append(c2 - c1)
    # Synchronisations, counted after the timing (the counter slows the step down).
    counted = count_syncs(full, trainer, args.warmup + args.rounds, max(int(cfg.LOG_PERIOD), 2))
    trainer.writer.close()
    quiet = [c for c in counted if c[0] % cfg.LOG_PERIOD != 0]
    mf, ml = statistics.median(t_full), statistics.median(t_floor)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}")
    print(f"config: {args.cfg} {' '.join(args.opts)}")
    print(
        f"batch: {cfg.TRAIN.BATCH_SIZE} videos x {len(cfg.DATA.SPEEDS)} speeds, {cfg.DATA.NUM_FRAMES}x"
        f"{cfg.DATA.CROP_SIZE}x{cfg.DATA.CROP_SIZE}, backbone {cfg.MODEL.BACKBONE.NAME} {list(cfg.MODEL.BACKBONE.WIDTHS)}, "
        f"bank {cfg.MEMORY_BANK.SIZE} ({'empty at start' if args.empty_bank else 'filled'}), AMP {trainer.amp_dtype}, "
        f"clips {'uint8 + device augmentation' if args.aug else 'float (augmented beforehand)'}"
    )
    print(f"wall time   full iteration {mf * 1000:.1f} ms, floor {ml * 1000:.1f} ms (medians), ratio {mf / ml:.3f}")
    fig = {"wall_full_ms": mf * 1000, "wall_floor_ms": ml * 1000}
    if dev.type == "cpu":
        # CPU time of this process: on a shared machine it does not count the time other jobs
        # held the cores (exact with --threads 1), so it is the primary measure on CPU.
        cf, cl = statistics.median(c_full), statistics.median(c_floor)
        print(f"CPU time    full iteration {cf * 1000:.1f} ms, floor {cl * 1000:.1f} ms (medians), ratio {cf / cl:.3f}")
        ratio = cf / cl
        fig.update(cpu_full_ms=cf * 1000, cpu_floor_ms=cl * 1000)
    else:
        ratio = mf / ml
    print(f"ratio full / floor: {ratio:.3f} (target <= 1.15)")
    per_step = sum(c[1] for c in counted) / len(counted)
    print(f"host syncs  a step that does not log: {quiet[0][1]} {quiet[0][2]}; per step over {len(counted)} steps "
          f"(LOG_PERIOD {cfg.LOG_PERIOD}, logging included): {per_step:.2f}")
    fig.update(ratio=ratio, syncs_quiet_step=quiet[0][1], syncs_per_step=per_step, quiet_counts=quiet[0][2])
    if args.json:
        print("json: " + json.dumps(fig))


if __name__ == "__main__":
    main()
