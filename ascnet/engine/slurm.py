"""Running ascnet on SLURM through submitit, with preemption/requeue and exact resume.

``tools/run_net.py --slurm`` calls :func:`submit`: it sizes the allocation from the config (or the
command line), writes the sbatch script through submitit and submits an :class:`ASCNetJob`.
Inside the allocation, every SLURM task (one per GPU, or ``--tasks-per-node`` on CPU clusters)
runs ``ASCNetJob.__call__``: it joins one ``torch.distributed`` process group (rendezvous from
SLURM's node list and a port derived from the job id and restart count, so a requeued job gets a
fresh rendezvous), forces ``TRAIN.AUTO_RESUME`` and runs ``get_task(cfg.TASK)(cfg)``.

Requeue, in short (details in ``docs/slurm.md``):

* SLURM sends ``SIGUSR2`` ``signal_delay_s`` seconds before the time limit, and preemption sends it
  too. submitit's handler runs on every task; on global rank 0 it calls
  :meth:`ASCNetJob.checkpoint`, which asks the running trainer to save its full state, then
  submitit rewrites the job pickle with a fresh ``ASCNetJob`` and calls ``scontrol requeue``.
  The trainer blocks the signal while an iteration runs, so the handler (and the save) happen at
  an iteration boundary and the resumed run replays exactly the remaining iterations.
* A requeue by the administrator (``scontrol requeue``) sends SIGTERM, which submitit ignores:
  nothing is saved, the job restarts from its original pickle and, since ``TRAIN.AUTO_RESUME`` is
  forced, resumes from the last periodic checkpoint (``TRAIN.CHECKPOINT_ITERS`` /
  ``TRAIN.CHECKPOINT_PERIOD``).
"""
import argparse
import os
import random
import shutil
import socket
import sys
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import submitit
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr
from submitit.slurm.slurm import SlurmExecutor

from ascnet.config.config import ConfigError, save_config, validate_cfg

# Ports tried for the rendezvous (the range submitit's TorchDistributedEnvironment uses).
_MIN_PORT, _MAX_PORT = 20000, 60000
# Prefix of every line this module prints inside a job (grep-able in the job logs).
LOG_PREFIX = "[ascnet.slurm]"


def _log(msg: str) -> None:
    # print, not logging: inside a job nothing configures logging before the trainer does, and
    # submitit's job logs capture stdout; flush so lines are not lost when the job is killed.
    print(f"{LOG_PREFIX} {msg}", flush=True)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def add_slurm_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the SLURM options (``--slurm``, ``--slurm-dry-run``, resources) to ``parser``.

    Resources left unset follow the config: ``--nodes`` = ``NUM_SHARDS``, ``--gpus-per-node`` =
    ``NUM_GPUS``, tasks per node = GPUs per node (or ``NUM_CPU_PROCESSES`` on CPU).

    Returns:
        The same parser (for chaining).
    """
    g = parser.add_argument_group(
        "SLURM (submitit)",
        "Submit the run as a SLURM job instead of running it here. The job is requeued on "
        "preemption/time-out and resumes exactly from its checkpoint (see docs/slurm.md).",
    )
    g.add_argument("--slurm", action="store_true", help="Submit to SLURM and return.")
    g.add_argument(
        "--slurm-dry-run", action="store_true", help="Print the sbatch script that would be submitted; submit nothing."
    )
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's default).")
    g.add_argument("--nodes", type=int, default=None, help="Nodes (default: NUM_SHARDS).")
    g.add_argument(
        "--gpus-per-node", type=int, default=None, help="GPUs per node, one task each (default: NUM_GPUS)."
    )
    g.add_argument(
        "--tasks-per-node",
        type=int,
        default=None,
        help="Processes per node on CPU clusters (default: NUM_CPU_PROCESSES); on GPU it must equal --gpus-per-node.",
    )
    g.add_argument(
        "--cpus-per-task",
        type=int,
        default=None,
        help="CPUs per task (default: DATA_LOADER.NUM_WORKERS + 1).",
    )
    g.add_argument("--mem-gb", type=float, default=None, help="Memory per node in GB (default: the cluster's).")
    g.add_argument("--timeout-min", type=int, default=4320, help="Time limit of one run of the job, minutes.")
    g.add_argument("--account", default=None, help="SLURM account.")
    g.add_argument("--qos", default=None, help="SLURM quality of service.")
    g.add_argument("--constraint", default=None, help="SLURM node constraint (e.g. volta32gb).")
    g.add_argument("--comment", default=None, help="SLURM job comment.")
    g.add_argument("--exclude", default=None, help="Nodes to exclude (SLURM node list).")
    g.add_argument(
        "--signal-delay-s",
        type=int,
        default=120,
        help="Seconds between SIGUSR2 and the kill at the time limit; must cover one iteration plus a checkpoint save.",
    )
    g.add_argument("--job-name", default=None, help="Job name (default: ascnet-<TASK>).")
    g.add_argument(
        "--max-num-timeout",
        type=int,
        default=20,
        help="How many times the job may be requeued after reaching its time limit (preemptions do not count).",
    )
    g.add_argument(
        "--slurm-folder",
        default=None,
        help="Folder (on storage shared by the nodes) for the job's sbatch script, pickles and logs "
        "(default: OUTPUT_DIR/slurm/<submission time>).",
    )
    return parser


# ------------------------------------------------------------------------------------------------
# Sizing the allocation
# ------------------------------------------------------------------------------------------------
def allocation_from_args(args: argparse.Namespace, cfg: CfgNode) -> Tuple[int, int, int]:
    """Return ``(nodes, gpus_per_node, tasks_per_node)`` from the options and the config.

    Raises:
        ConfigError: inconsistent or non-positive values.
    """
    nodes = args.nodes if args.nodes is not None else cfg.NUM_SHARDS
    gpus = args.gpus_per_node if args.gpus_per_node is not None else cfg.NUM_GPUS
    if nodes < 1:
        raise ConfigError(f"--nodes must be >= 1, got {nodes}.")
    if gpus < 0:
        raise ConfigError(f"--gpus-per-node must be >= 0, got {gpus}.")
    if gpus > 0:
        if args.tasks_per_node is not None and args.tasks_per_node != gpus:
            raise ConfigError(
                f"--tasks-per-node ({args.tasks_per_node}) must equal --gpus-per-node ({gpus}): ascnet runs "
                "one process per GPU. Drop --tasks-per-node."
            )
        tasks = gpus
    else:
        tasks = args.tasks_per_node if args.tasks_per_node is not None else cfg.NUM_CPU_PROCESSES
        if tasks < 1:
            raise ConfigError(f"--tasks-per-node must be >= 1, got {tasks}.")
    return nodes, gpus, tasks


def adapt_cfg_to_allocation(cfg: CfgNode, nodes: int, gpus_per_node: int, tasks_per_node: int) -> CfgNode:
    """Return a copy of ``cfg`` whose process layout matches the allocation.

    Sets ``NUM_SHARDS`` = nodes, ``NUM_GPUS`` = GPUs per node and, on CPU,
    ``NUM_CPU_PROCESSES`` = tasks per node; forces ``TRAIN.AUTO_RESUME`` (a requeued job must
    resume) and re-validates (e.g. the global batch must divide over the new world size).

    Raises:
        ConfigError: the adapted config is invalid (the message names the key and the fix).
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.NUM_SHARDS = nodes
    cfg.SHARD_ID = 0  # each task sets its own from SLURM_NODEID
    cfg.NUM_GPUS = gpus_per_node
    if gpus_per_node == 0:
        cfg.NUM_CPU_PROCESSES = tasks_per_node
    cfg.TRAIN.AUTO_RESUME = True
    try:
        validate_cfg(cfg)
    except ConfigError as e:
        raise ConfigError(
            f"With the SLURM allocation of {nodes} node(s) x {tasks_per_node} task(s) "
            f"({nodes * tasks_per_node} processes) the config is invalid: {e}"
        ) from e
    cfg.freeze()
    return cfg


def slurm_parameters(args: argparse.Namespace, cfg: CfgNode) -> Dict[str, Any]:
    """Return the ``AutoExecutor.update_parameters`` keywords for this run.

    ``cfg`` must already be adapted (:func:`adapt_cfg_to_allocation`).
    """
    nodes, gpus, tasks = cfg.NUM_SHARDS, cfg.NUM_GPUS, (cfg.NUM_GPUS or cfg.NUM_CPU_PROCESSES)
    cpus = args.cpus_per_task if args.cpus_per_task is not None else cfg.DATA_LOADER.NUM_WORKERS + 1
    if cpus < 1:
        raise ConfigError(f"--cpus-per-task must be >= 1, got {cpus}.")
    if args.timeout_min < 1:
        raise ConfigError(f"--timeout-min must be >= 1, got {args.timeout_min}.")
    if args.signal_delay_s < 1 or args.signal_delay_s >= args.timeout_min * 60:
        raise ConfigError(
            f"--signal-delay-s ({args.signal_delay_s}) must be >= 1 and shorter than --timeout-min "
            f"({args.timeout_min} min)."
        )
    params: Dict[str, Any] = {
        "name": args.job_name or f"ascnet-{cfg.TASK}",
        "timeout_min": args.timeout_min,
        "nodes": nodes,
        "tasks_per_node": tasks,
        "cpus_per_task": cpus,
        "slurm_signal_delay_s": args.signal_delay_s,
        # Requeue-able whatever the cluster's JobRequeue default: submitit's requeue after
        # USR2 needs it, and a node failure then requeues the job too (it resumes from OUTPUT_DIR).
        "slurm_additional_parameters": {"requeue": True},
    }
    if gpus > 0:
        params["gpus_per_node"] = gpus
    if args.mem_gb is not None:
        params["mem_gb"] = args.mem_gb
    for opt in ("partition", "account", "qos", "constraint", "comment", "exclude"):
        value = getattr(args, opt)
        if value:
            params[f"slurm_{opt}"] = value
    return params


def to_slurm_executor_parameters(params: Dict[str, Any]) -> Dict[str, Any]:
    """Translate AutoExecutor keywords (generic + ``slurm_*``) to ``SlurmExecutor`` ones.

    The same translation ``submitit.AutoExecutor`` does for ``cluster="slurm"``.
    """
    generics = submitit.AutoExecutor._typed_parameters()
    out = {SlurmExecutor._equivalence_dict().get(k, k): v for k, v in params.items() if k in generics}
    if "mem" in out:
        out["mem"] = submitit.slurm.slurm._convert_mem(out["mem"])
    out.update({k[len("slurm_"):]: v for k, v in params.items() if k.startswith("slurm_")})
    return out


# ------------------------------------------------------------------------------------------------
# The job
# ------------------------------------------------------------------------------------------------
def rendezvous_port(job_id: str, restart_count: int) -> int:
    """A port for the process group's rendezvous, the same on every task of one run of a job.

    Derived from the job id and SLURM's restart count: every task computes it without talking to
    the others, and a requeued job (restart count + 1) rendezvous on a different port than the
    run it replaces, whose sockets may linger.
    """
    return random.Random(f"{job_id}:{restart_count}").randint(_MIN_PORT, _MAX_PORT)


def _current_trainer() -> Any:
    """The running Trainer of this process, or None.

    Called from a signal handler, which may interrupt an ``import`` during start-up: never import
    here (an ImportError raised there could be swallowed by the interrupted code). If the trainer
    module is not loaded yet, no trainer can be running.
    """
    trainer_module = sys.modules.get("ascnet.engine.trainer")
    if trainer_module is None:
        return None
    return trainer_module.get_current_trainer()


def _run_task(cfg: CfgNode) -> None:
    """Run in every process by launch(): log the process group, then run ``cfg.TASK``."""
    from ascnet.engine.tasks import get_task

    ASCNetJob._log_process_group()
    get_task(cfg.TASK)(cfg)


def _restart_count() -> int:
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


class ASCNetJob(submitit.helpers.Checkpointable):
    """What each SLURM task runs: join the process group, run ``cfg.TASK``, resume on requeue.

    Args:
        cfg: the run's config, adapted to the allocation (:func:`adapt_cfg_to_allocation`).
    """

    def __init__(self, cfg: CfgNode) -> None:
        self.cfg = cfg

    def _job_cfg(self, job_env: submitit.JobEnvironment) -> CfgNode:
        """The config for this task: process layout checked against the live allocation."""
        cfg = self.cfg.clone()
        cfg.defrost()
        nodes = job_env.num_nodes
        per_node = job_env.num_tasks // nodes
        if job_env.num_tasks % nodes:
            raise ConfigError(
                f"The allocation has {job_env.num_tasks} tasks on {nodes} nodes (uneven): ascnet needs the "
                "same number of tasks on every node. Submit with --nodes and --tasks-per-node/--gpus-per-node."
            )
        expected = cfg.NUM_SHARDS * (cfg.NUM_GPUS or cfg.NUM_CPU_PROCESSES)
        if expected != job_env.num_tasks:
            _log(
                f"warning: the config asks for {expected} processes but the allocation has "
                f"{job_env.num_tasks} tasks on {nodes} node(s); following the allocation."
            )
        cfg.NUM_SHARDS = nodes
        cfg.SHARD_ID = job_env.node
        if cfg.NUM_GPUS > 0:
            cfg.NUM_GPUS = per_node
        else:
            cfg.NUM_CPU_PROCESSES = per_node
        cfg.TRAIN.AUTO_RESUME = True  # a requeued job must continue, never start over
        if cfg.DIST_URL != "auto":
            _log(f"DIST_URL {cfg.DIST_URL!r} ignored: on SLURM the rendezvous comes from the allocation.")
            cfg.DIST_URL = "auto"
        validate_cfg(cfg)
        cfg.freeze()
        return cfg

    def __call__(self) -> None:
        from ascnet.engine.launch import launch
        from ascnet.engine.plugins import import_plugins

        job_env = submitit.JobEnvironment()
        # Plugins first: they may register the task and the components the config names.
        import_plugins(self.cfg.PLUGINS)
        cfg = self._job_cfg(job_env)

        dist_env = submitit.helpers.TorchDistributedEnvironment()
        if "MASTER_PORT" not in os.environ:
            dist_env.master_port = rendezvous_port(job_env.job_id, _restart_count())
        # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE for launch()'s join
        # mode. CUDA_VISIBLE_DEVICES stays as SLURM set it (all GPUs of the node): each process
        # selects cuda:LOCAL_RANK, which keeps NCCL's peer-to-peer paths between local GPUs.
        dist_env.export(set_cuda_visible_devices=False, overwrite=True)
        backend = cfg.DIST_BACKEND if cfg.DIST_BACKEND != "auto" else ("nccl" if cfg.NUM_GPUS > 0 else "gloo")
        _log(
            f"job {job_env.job_id} (restart {_restart_count()}) on {socket.gethostname()}: "
            f"rank {dist_env.rank} of world size {dist_env.world_size} (node {job_env.node} of "
            f"{job_env.num_nodes}, local rank {dist_env.local_rank}), backend {backend}, "
            f"rendezvous {dist_env.master_addr}:{dist_env.master_port}"
        )
        # launch() joins the world described by the environment: init_distributed, seeds
        # RNG_SEED + rank, DETERMINISTIC, logging; it destroys the process group at the end.
        launch(cfg, _run_task)
        _log(f"rank {dist_env.rank}: task {cfg.TASK!r} finished")

    @staticmethod
    def _log_process_group() -> None:
        """Log every rank of the group as seen by this process (proves they all joined)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            _log("process group: none (world size 1)")
            return
        members: List[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(members, (dist.get_rank(), socket.gethostname()))
        ranks = sorted(r for r, _ in members)
        hosts = sorted({h for _, h in members})
        _log(f"process group ready: world size {dist.get_world_size()}, ranks {ranks}, hosts {hosts}")

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on global rank 0 when SIGUSR2 (preemption/time limit) arrives.

        Saves the running trainer's full state (the trainer only lets the signal through at an
        iteration boundary) and returns a fresh job for the requeue; that job starts a new
        rendezvous and resumes from the checkpoint through ``TRAIN.AUTO_RESUME``.
        """
        trainer = _current_trainer()
        if trainer is None:
            _log(
                "SIGUSR2: no trainer is running (the job was starting up or finishing); nothing to "
                "save, the requeued job resumes from the last checkpoint in OUTPUT_DIR, if any."
            )
        else:
            it = getattr(trainer, "iter", "?")
            try:
                path = trainer.save_checkpoint()
            except Exception as e:  # noqa: BLE001  (e.g. storage full or unreachable)
                # Requeue anyway: losing the iterations since the last checkpoint beats ending
                # the job, which would need a manual resubmission.
                _log(
                    f"SIGUSR2: saving a checkpoint at iteration {it} failed ({type(e).__name__}: {e}); "
                    "requeueing: the run resumes from the last checkpoint in OUTPUT_DIR."
                )
            else:
                _log(f"SIGUSR2: saved a checkpoint at iteration {it} ({path}); requeueing.")
        return submitit.helpers.DelayedSubmission(type(self)(self.cfg))


# ------------------------------------------------------------------------------------------------
# Submission
# ------------------------------------------------------------------------------------------------
class _ScriptOnlySlurmExecutor(SlurmExecutor):
    """A SlurmExecutor that can write sbatch scripts on a machine without SLURM (dry runs)."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def _job_folder(args: argparse.Namespace, cfg: CfgNode) -> str:
    if args.slurm_folder:
        return os.path.abspath(args.slurm_folder)
    out = cfg.OUTPUT_DIR
    if "://" in out and not out.startswith("file://"):
        raise ConfigError(
            f"OUTPUT_DIR is {out!r}, which SLURM nodes cannot write job logs to; pass --slurm-folder "
            "with a folder on a file system shared by the nodes."
        )
    out = out[len("file://"):] if out.startswith("file://") else out
    # A fresh folder per submission (even several per second from one sweep script): a fresh
    # cluster restarts job ids at 1, and submitit would otherwise read an older job's result
    # pickle with the same id.
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    return os.path.join(os.path.abspath(out), "slurm", stamp)


def sbatch_script(folder: str, params: Dict[str, Any], max_num_timeout: int = 20) -> str:
    """The sbatch script submitit would submit for ``params`` (AutoExecutor keywords).

    Works without SLURM installed (nothing is submitted or written).
    """
    executor = _ScriptOnlySlurmExecutor(folder, max_num_timeout=max_num_timeout)
    executor.update_parameters(**to_slurm_executor_parameters(params))
    return executor._make_submission_file_text(executor._submitit_command_str, "dry-run")


def _absolute_output_dir(cfg: CfgNode) -> CfgNode:
    # Jobs run in the submission folder, but make local paths absolute so the job's outputs land
    # in the same place whatever the working directory of the node.
    if "://" in cfg.OUTPUT_DIR:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = os.path.abspath(cfg.OUTPUT_DIR)
    cfg.freeze()
    return cfg


def submit(args: argparse.Namespace, cfg: CfgNode) -> Optional[submitit.Job]:
    """Submit the run described by ``cfg`` as a SLURM job (or print its script with --slurm-dry-run).

    Prints the job id, the job folder and the log paths of task 0.

    Args:
        args: parsed command line, with the options of :func:`add_slurm_args`.
        cfg: the loaded config.

    Returns:
        The submitit job (None for a dry run).

    Raises:
        ConfigError: options inconsistent with the config, or no SLURM on this machine.
    """
    nodes, gpus, tasks = allocation_from_args(args, cfg)
    cfg = _absolute_output_dir(adapt_cfg_to_allocation(cfg, nodes, gpus, tasks))
    params = slurm_parameters(args, cfg)
    folder = _job_folder(args, cfg)
    if args.slurm_dry_run:
        print(f"# SLURM dry run: nothing submitted. Job folder would be {folder}", flush=True)
        print(sbatch_script(folder, params, args.max_num_timeout), flush=True)
        return None
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise ConfigError(
            "--slurm needs SLURM's sbatch and srun on PATH (run from a cluster login node); use "
            "--slurm-dry-run to only print the script."
        )
    g_pathmgr.mkdirs(folder)
    save_config(cfg, os.path.join(folder, "config.yaml"))
    # cluster="slurm" explicitly: never fall back to running locally by accident.
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=args.max_num_timeout)
    executor.update_parameters(**params)
    job = executor.submit(ASCNetJob(cfg))
    world = nodes * tasks
    print(
        f"Submitted SLURM job {job.job_id}: {nodes} node(s) x {tasks} task(s) (world size {world}), "
        f"TASK {cfg.TASK}, OUTPUT_DIR {cfg.OUTPUT_DIR}\n"
        f"  job folder: {folder}\n"
        f"  stdout (rank 0): {job.paths.stdout}\n"
        f"  stderr (rank 0): {job.paths.stderr}\n"
        f"  other ranks: {folder}/{job.job_id}_<rank>_log.{{out,err}}",
        flush=True,
    )
    return job
