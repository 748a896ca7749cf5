"""Start the processes of a run and set up torch.distributed, seeds and logging in each.

Three ways a run starts:

* **Spawn** (the default): ``launch(cfg, fn)`` starts ``NUM_GPUS`` processes (one per GPU,
  NCCL) or ``NUM_CPU_PROCESSES`` processes on CPU (gloo), so multi-process code can be run
  and tested without GPUs. The spawned processes end when the launcher dies
  (:func:`die_with_parent`). A world of one process runs ``fn`` in the calling process without
  a process group. On several machines, start the same command on each with
  ``NUM_SHARDS N SHARD_ID i DIST_URL tcp://<host of shard 0>:<port>``.
* **Join**: when the environment already describes the world (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, as set by ``torchrun`` or a SLURM
  wrapper), nothing is spawned: this process joins that world.
* **Reuse**: :func:`init_distributed` sets up one process of a world whose ranks were decided
  elsewhere (the SLURM launcher uses it with submitit's ``JobEnvironment``).

In every process: ``RNG_SEED + rank`` seeds python, numpy and torch; ``DETERMINISTIC``
switches torch's deterministic algorithms on; logging is set up (only rank 0 prints).
"""
import contextlib
import datetime
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
from fvcore.common.config import CfgNode

from ascnet.utils.env import collect_env_info, seed_all, set_deterministic
from ascnet.utils.logging import setup_logging
from ascnet.utils.run_lock import hold_run_lock

logger = logging.getLogger(__name__)

# Environment variables that mark a process started by torchrun or a SLURM wrapper.
_JOIN_ENV = ("RANK", "WORLD_SIZE")


class LaunchError(RuntimeError):
    """The requested process layout cannot be started; the message says how to fix it."""


def find_free_port() -> int:
    """Ask the OS for a free TCP port on this machine (it may be taken again before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def resolve_backend(backend: str, use_cuda: bool) -> str:
    """``"auto"`` -> ``"nccl"`` when processes use GPUs, else ``"gloo"``."""
    if backend == "auto":
        return "nccl" if use_cuda else "gloo"
    if backend == "nccl" and not use_cuda:
        raise LaunchError("DIST_BACKEND is 'nccl' but the run uses no GPU (NUM_GPUS 0). Use 'gloo' or 'auto'.")
    return backend


def init_distributed(
    rank: int,
    world_size: int,
    local_rank: int,
    backend: str = "auto",
    url: str = "env://",
    local_world_size: Optional[int] = None,
    timeout_min: float = 30.0,
) -> None:
    """Join (or create) the default process group as process ``rank`` of ``world_size``.

    Sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment (read by
    :func:`ascnet.utils.distributed.get_local_rank` and by libraries) and, with CUDA, selects
    the GPU ``local_rank``. A world of one process creates no process group.

    Args:
        rank: global rank of this process.
        world_size: number of processes over all machines.
        local_rank: rank on this machine (index of the GPU used).
        backend: ``"auto"`` (nccl with CUDA, else gloo), ``"nccl"`` or ``"gloo"``.
        url: torch.distributed init method (``"env://"`` reads MASTER_ADDR/MASTER_PORT, or
            ``"tcp://host:port"``).
        local_world_size: processes on this machine (for ``LOCAL_WORLD_SIZE``).
        timeout_min: collective timeout in minutes.
    """
    os.environ["RANK"] = str(rank)
    os.environ["WORLD_SIZE"] = str(world_size)
    os.environ["LOCAL_RANK"] = str(local_rank)
    if local_world_size is not None:
        os.environ["LOCAL_WORLD_SIZE"] = str(local_world_size)
    use_cuda = backend == "nccl" or (backend == "auto" and torch.cuda.is_available())
    backend = resolve_backend(backend, use_cuda)
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            init_method=url,
            world_size=world_size,
            rank=rank,
            timeout=datetime.timedelta(minutes=timeout_min),
        )


def setup_process(cfg: CfgNode, rank: int) -> None:
    """Per-process set-up shared by every way of starting: seeds (``RNG_SEED + rank``),
    ``DETERMINISTIC``, logging (rank 0 prints). Launchers that start processes themselves
    (the SLURM job) call it after :func:`init_distributed`."""
    seed_all(cfg.RNG_SEED + rank)
    set_deterministic(cfg.DETERMINISTIC)
    setup_logging(cfg.OUTPUT_DIR, rank=rank)
    if rank == 0:
        logger.info("Environment:\n%s", collect_env_info())


def _run_in_world(
    cfg: CfgNode,
    fn: Callable,
    args: Sequence[Any],
    rank: int,
    world_size: int,
    local_rank: int,
    backend: str,
    url: str,
    local_world_size: int,
) -> None:
    """Join the process group, set the process up, run ``fn`` and leave the group."""
    init_distributed(
        rank, world_size, local_rank, backend, url, local_world_size=local_world_size,
        timeout_min=cfg.DIST_TIMEOUT_S / 60.0,
    )
    try:
        # One run per OUTPUT_DIR: global rank 0 holds the lock for the whole run.
        with hold_run_lock(cfg.OUTPUT_DIR) if rank == 0 else contextlib.nullcontext():
            setup_process(cfg, rank)
            fn(cfg, *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this process (SIGKILL) as soon as the process ``parent_pid`` is gone.

    Spawned ranks must not outlive their launcher: reparented to PID 1 they would keep training
    and writing checkpoints into OUTPUT_DIR (torch's spawn asks for a SIGINT on the parent's
    death, which a process that ignores SIGINT, e.g. one started with ``&`` from a script, or
    that catches KeyboardInterrupt, never acts on). Two layers: Linux's parent-death signal
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, immediate), and a watchdog thread that compares
    ``os.getppid()`` with ``parent_pid`` every ``poll_s`` seconds (other systems, and a parent
    that died before the prctl). SIGKILL, so nothing (no checkpoint) is written after it; a
    save it interrupts leaves a partial ``*.tmp-*`` file, removed at the next start.
    """
    try:  # Linux only; ctypes since the standard library has no prctl
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="ascnet-parent-watchdog", daemon=True).start()


def _worker(
    local_rank: int,
    fn: Callable,
    cfg: CfgNode,
    args: Sequence[Any],
    world_size: int,
    procs_per_machine: int,
    shard_id: int,
    backend: str,
    url: str,
    parent_pid: Optional[int] = None,
) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
    rank = shard_id * procs_per_machine + local_rank
    # A spawned process starts from a fresh interpreter: import the config's plugins again so
    # their registered components (and patches) exist here too.
    from ascnet.engine.plugins import import_plugins

    import_plugins(cfg.PLUGINS)
    _run_in_world(cfg, fn, args, rank, world_size, local_rank, backend, url, procs_per_machine)


def _check_gpus(cfg: CfgNode) -> None:
    if cfg.NUM_GPUS > 0:
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if cfg.NUM_GPUS > available:
            raise LaunchError(
                f"NUM_GPUS is {cfg.NUM_GPUS} but this machine has {available} usable CUDA device(s). "
                f"Set NUM_GPUS {available} (0 runs on CPU with NUM_CPU_PROCESSES processes), or "
                "check CUDA_VISIBLE_DEVICES."
            )


def launched_externally() -> bool:
    """True when torchrun / SLURM already set ``RANK`` and ``WORLD_SIZE`` for this process."""
    return all(k in os.environ for k in _JOIN_ENV)


def launch(cfg: CfgNode, fn: Callable, args: Sequence[Any] = ()) -> None:
    """Run ``fn(cfg, *args)`` in every process of the run described by ``cfg``.

    Args:
        cfg: the run's config (``NUM_GPUS``, ``NUM_CPU_PROCESSES``, ``NUM_SHARDS``,
            ``SHARD_ID``, ``DIST_URL``, ``DIST_BACKEND``, ``DIST_TIMEOUT_S``, ``RNG_SEED``,
            ``DETERMINISTIC``).
        fn: a picklable (module-level) function; it runs once per process after
            torch.distributed is set up.
        args: extra picklable arguments passed after ``cfg``.

    Raises:
        LaunchError: more GPUs asked than available, ``DIST_TIMEOUT_S`` <= 0, ``DIST_URL auto`` on several machines
            without MASTER_ADDR/MASTER_PORT, or a batch size not divisible by the world.
    """
    _check_gpus(cfg)
    if cfg.DIST_TIMEOUT_S <= 0:
        raise LaunchError(f"DIST_TIMEOUT_S must be > 0 seconds, got {cfg.DIST_TIMEOUT_S}.")
    use_cuda = cfg.NUM_GPUS > 0
    backend = resolve_backend(cfg.DIST_BACKEND, use_cuda)

    if launched_externally():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cfg.TRAIN.BATCH_SIZE % world:
            raise LaunchError(
                f"TRAIN.BATCH_SIZE ({cfg.TRAIN.BATCH_SIZE}) is the global batch and must be divisible "
                f"by the {world} processes started by torchrun/SLURM."
            )
        url = cfg.DIST_URL if cfg.DIST_URL != "auto" else "env://"
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", max(cfg.NUM_GPUS, 1)))
        _run_in_world(cfg, fn, args, rank, world, local_rank, backend, url, local_world)
        return

    procs = cfg.NUM_GPUS if use_cuda else cfg.NUM_CPU_PROCESSES
    world = procs * cfg.NUM_SHARDS
    if world == 1:
        # One process: run here (debuggers, Ctrl-C and tracebacks behave as usual). No
        # process group, and no RANK/WORLD_SIZE in the environment (a later launch() in the
        # same process must not mistake itself for a torchrun child).
        if use_cuda:
            torch.cuda.set_device(0)
        with hold_run_lock(cfg.OUTPUT_DIR):  # one run per OUTPUT_DIR
            setup_process(cfg, 0)
            fn(cfg, *args)
        return

    url = cfg.DIST_URL
    if url == "auto":
        if cfg.NUM_SHARDS > 1:
            addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
            if not (addr and port):
                raise LaunchError(
                    "DIST_URL 'auto' only picks a port on a single machine. With NUM_SHARDS > 1 give "
                    "DIST_URL tcp://<host of SHARD_ID 0>:<port> (the same on every machine), or set "
                    "MASTER_ADDR and MASTER_PORT."
                )
            url = f"tcp://{addr}:{port}"
        else:
            url = f"tcp://127.0.0.1:{find_free_port()}"
    torch.multiprocessing.start_processes(
        _worker,
        args=(fn, cfg, tuple(args), world, procs, cfg.SHARD_ID, backend, url, os.getpid()),
        nprocs=procs,
        join=True,
        start_method="spawn",
    )
