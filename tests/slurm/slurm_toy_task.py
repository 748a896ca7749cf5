"""A tiny stand-in training task for the SLURM/submitit tests (a plugin module: list it in PLUGINS).

It follows the trainer contract that ``ascnet.engine.slurm`` relies on, on a model small enough
for requeue tests to take seconds:

* every iteration runs inside ``preemption.defer_signals()``, as the engine's trainer does, so
  submitit's handler (and ``ASCNetJob.checkpoint()``) only runs at an iteration boundary (the
  main thread's ``pthread_sigmask`` alone is not enough: the kernel hands the process-wide
  signal to a thread that does not block it, e.g. gloo's, and CPython then runs the Python
  handler in the main thread mid-iteration: most likely what made one CI run record iteration
  184 twice, the handler's SystemExit passing through a record-writing ``finally``);
* ``save_checkpoint()`` writes the full state (iteration, model, optimiser) atomically, rank 0
  only, and ``TRAIN.AUTO_RESUME`` resumes from it;
* ``TRAIN.CHECKPOINT_ITERS`` saves periodically.

It also records which iterations each run executed (``OUTPUT_DIR/toy_runs.jsonl``) and, at the
end, the final weights (``OUTPUT_DIR/toy_final.pt``), for the tests to compare. Before the first
requeue it sleeps ``TOY_SLEEP_S`` (env) per iteration so a signal surely lands mid-run; after a
resume it runs at full speed.
"""
import json
import os
import time

import torch
import torch.distributed as dist

from ascnet.engine import preemption
from ascnet.engine.tasks import register_task

CKPT = "toy_checkpoint.pt"
_TRAINER = None


class ToyTrainer:
    """Linear regression with SGD under DDP (gloo); the whole state fits in one small file."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        torch.manual_seed(0)
        self.model = torch.nn.Linear(4, 1)
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if dist.is_initialized() else self.model
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.iter = 0
        self.resumed_from = None
        path = os.path.join(cfg.OUTPUT_DIR, CKPT)
        if cfg.TRAIN.AUTO_RESUME and os.path.exists(path):
            state = torch.load(path, weights_only=True)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.iter = self.resumed_from = int(state["iter"])
            print(f"[toy] rank {self.rank}: resumed from iteration {self.iter}", flush=True)

    def save_checkpoint(self, name=None):
        if self.rank != 0:
            return None
        path = os.path.join(self.cfg.OUTPUT_DIR, name or CKPT)
        tmp = path + ".tmp"
        state = {"iter": self.iter, "model": self.model.state_dict(), "optimizer": self.opt.state_dict()}
        torch.save(state, tmp)
        os.replace(tmp, path)
        print(f"[toy] rank 0: saved checkpoint at iteration {self.iter}", flush=True)
        return path

    def step(self, it):
        g = torch.Generator().manual_seed(1000 * it + self.rank)
        x = torch.randn(8, 4, generator=g)
        y = x.sum(dim=1, keepdim=True)
        loss = torch.nn.functional.mse_loss(self.ddp(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def train(self):
        max_iter = self.cfg.TRAIN.MAX_ITERS
        sleep = float(os.environ.get("TOY_SLEEP_S", "0")) if self.resumed_from is None else 0.0
        done = []
        while self.iter < max_iter:
            with preemption.defer_signals():  # pending signals are delivered on exit, between iterations
                self.step(self.iter)
                self.iter += 1
                done.append(self.iter)
                if sleep:
                    time.sleep(sleep)
                period = self.cfg.TRAIN.CHECKPOINT_ITERS
                if period and self.iter % period == 0:
                    self.save_checkpoint()
                if self.rank == 0:  # only iterations that completed are recorded
                    with open(os.path.join(self.cfg.OUTPUT_DIR, "toy_runs.jsonl"), "a") as f:
                        f.write(json.dumps({"resumed_from": self.resumed_from, "iter": self.iter}) + "\n")
        if self.rank == 0:
            torch.save(self.model.state_dict(), os.path.join(self.cfg.OUTPUT_DIR, "toy_final.pt"))


def run_toy(cfg):
    global _TRAINER
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    _TRAINER = ToyTrainer(cfg)
    # The running trainer, as the engine's Trainer records itself (ascnet.engine.preemption).
    preemption.set_current_trainer(_TRAINER)
    try:
        _TRAINER.train()
    finally:
        preemption.set_current_trainer(None)
        _TRAINER = None


register_task("slurm_toy", "slurm_toy_task:run_toy")
