"""TASK ``pretrain_dump_banks`` for the two-node SLURM tests (a plugin module: list it in PLUGINS).

The real ``pretrain`` task (the engine's Trainer, unchanged), then every rank writes its own
memory banks (every buffer of every ``RingMemoryBank`` in the model) to
``OUTPUT_DIR/memory_banks_rank<r>.pt``: the checkpoint holds rank 0's copy only, and the tests
check that the ranks' copies are identical.

With ``ASCNET_TEST_STEP_SLEEP_S`` in the environment, the first run of a job (SLURM restart
count 0) sleeps that long after each iteration, so that a signal or a kill surely lands
mid-run; the sleep changes no result, and a requeued run goes at full speed.
"""
import os
import time

import torch
import torch.distributed as dist

from ascnet.engine.tasks import register_task


def run_pretrain_dump_banks(cfg):
    from ascnet.engine.pretrain import run_pretrain
    from ascnet.modeling.memory_bank.ring import RingMemoryBank
    from ascnet.utils import distributed as du

    sleep_s = float(os.environ.get("ASCNET_TEST_STEP_SLEEP_S", "0") or 0)
    if sleep_s and os.environ.get("SLURM_RESTART_COUNT", "0") in ("", "0"):
        trainer = _slow_pretrain(cfg, sleep_s)
    else:
        trainer = run_pretrain(cfg)
    rank = dist.get_rank() if dist.is_initialized() else 0
    banks = {}
    for name, module in du.unwrap(trainer.model).named_modules():
        if isinstance(module, RingMemoryBank):
            for buf_name, buf in module.named_buffers(recurse=False):
                banks[f"{name}.{buf_name}"] = buf.detach().cpu().clone()
    assert banks, "the model has no RingMemoryBank"
    torch.save(banks, os.path.join(cfg.OUTPUT_DIR, f"memory_banks_rank{rank}.pt"))


def _slow_pretrain(cfg, sleep_s):
    """``run_pretrain`` with a sleep after each iteration."""
    from ascnet.engine.trainer import Trainer
    from ascnet.modeling.meta_arch import ascnet as _ascnet  # noqa: F401  (registers ASCNet)

    class SlowTrainer(Trainer):
        def run_step(self, batch):
            stats = super().run_step(batch)
            time.sleep(sleep_s)
            return stats

    trainer = SlowTrainer(cfg, mode="pretrain")
    trainer.train()
    return trainer


register_task("pretrain_dump_banks", "bank_dump_task:run_pretrain_dump_banks")
