"""The table of runnable tasks: ``cfg.TASK`` -> the function each process runs.

A task function is called as ``fn(cfg: CfgNode) -> None`` inside every process started by
:func:`ascnet.engine.launch.launch` (after torch.distributed is set up and the process is
seeded). Implementations are imported lazily ("module:function"), so a task's heavy
dependencies are only imported when it runs. Plugins may add tasks with :func:`register_task`.
"""
import difflib
import importlib
from typing import Callable, Dict

TASKS: Dict[str, str] = {
    # Self-supervised ASCNet pretraining (ascnet/engine/pretrain.py).
    "pretrain": "ascnet.engine.pretrain:run_pretrain",
    # Downstream fine-tuning of the whole network, then multi-view testing.
    "finetune": "ascnet.engine.downstream:run_finetune",
    # Linear protocol: frozen backbone (BN in eval mode), one linear layer, then testing.
    "linear": "ascnet.engine.downstream:run_linear",
    # Multi-view testing of a trained classifier only.
    "test": "ascnet.engine.downstream:run_test",
    # Video retrieval evaluation (test -> train nearest neighbours).
    "retrieval": "ascnet.engine.retrieval:run_retrieval",
}


def register_task(name: str, target: str) -> None:
    """Add a task: ``target`` is ``"package.module:function"``."""
    if ":" not in target:
        raise ValueError(f"Task target must look like 'package.module:function', got {target!r}.")
    TASKS[name] = target


def check_task(name: str) -> None:
    """Raise ConfigError (with the closest registered name) when ``name`` is not a task."""
    if name not in TASKS:
        from ascnet.config import ConfigError

        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"TASK is {name!r}; choose one of {sorted(TASKS)}.{hint}")


def get_task(name: str) -> Callable:
    """Return the function of task ``name`` (imported on first use)."""
    if name not in TASKS:
        raise KeyError(f"Unknown TASK {name!r}; registered tasks: {sorted(TASKS)}.")
    module, fn = TASKS[name].split(":")
    return getattr(importlib.import_module(module), fn)
