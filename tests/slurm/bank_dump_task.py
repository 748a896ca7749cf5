"""TASK ``pretrain_dump_banks`` for the two-node SLURM tests (a plugin module: list it in PLUGINS).

The real ``pretrain`` task (the engine's Trainer, unchanged), then every rank writes its own
memory banks (every buffer of every ``RingMemoryBank`` in the model) to
``OUTPUT_DIR/memory_banks_rank<r>.pt``: the checkpoint holds rank 0's copy only, and the tests
check that the ranks' copies are identical.
"""
import os

import torch
import torch.distributed as dist

from ascnet.engine.tasks import register_task


def run_pretrain_dump_banks(cfg):
    from ascnet.engine.pretrain import run_pretrain
    from ascnet.modeling.memory_bank.ring import RingMemoryBank
    from ascnet.utils import distributed as du

    trainer = run_pretrain(cfg)
    rank = dist.get_rank() if dist.is_initialized() else 0
    banks = {}
    for name, module in du.unwrap(trainer.model).named_modules():
        if isinstance(module, RingMemoryBank):
            for buf_name, buf in module.named_buffers(recurse=False):
                banks[f"{name}.{buf_name}"] = buf.detach().cpu().clone()
    assert banks, "the model has no RingMemoryBank"
    torch.save(banks, os.path.join(cfg.OUTPUT_DIR, f"memory_banks_rank{rank}.pt"))


register_task("pretrain_dump_banks", "bank_dump_task:run_pretrain_dump_banks")
