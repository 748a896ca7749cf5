"""Running ascnet on SLURM through submitit, with preemption/requeue and exact resume.

(Past 450 lines on purpose: submission, the job's rendezvous and the requeue checkpoint are one
protocol whose pieces read each other's state; splitting it would scatter that contract.)

``tools/run_net.py --slurm`` calls :func:`submit`: it sizes the allocation from the config (or the
command line), writes the sbatch script through submitit and submits an :class:`ASCNetJob`.
Inside the allocation, every SLURM task (one per GPU, or ``--tasks-per-node`` on CPU clusters)
runs ``ASCNetJob.__call__``: it joins one ``torch.distributed`` process group (rendezvous at the
first node of SLURM's node list, by SLURM's ``NodeAddr`` where the name does not resolve, on a
port derived from the job id and restart count, so a requeued job gets a fresh rendezvous; the
group times out after ``DIST_TIMEOUT_S``), forces ``TRAIN.AUTO_RESUME`` and runs
``get_task(cfg.TASK)(cfg)``. The command-line options live in ``tools/run_net.py``; they fill a
:class:`SlurmOptions`.

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
import contextlib
import dataclasses
import io
import os
import random
import re
import shutil
import socket
import subprocess
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from fvcore.common.config import CfgNode
from iopath.common.file_io import g_pathmgr

from ascnet.config.config import ConfigError, save_config, validate_cfg
from ascnet.engine import preemption

# Ports of the rendezvous (the range submitit's TorchDistributedEnvironment uses).
_MIN_PORT, _MAX_PORT = 20000, 60000
# Consecutive ports per job: one per restart (restart count modulo this), see rendezvous_port().
_PORTS_PER_JOB = 8
# submitit versions whose private script writer the dry run was checked with (see sbatch_script;
# tests/engine/test_slurm.py fails when the dry run and a real submission write different scripts).
SUBMITIT_CHECKED_VERSIONS = ("1.5.4",)
# Prefix of every line this module prints inside a job (grep-able in the job logs).
LOG_PREFIX = "[ascnet.slurm]"


def _log(msg: str) -> None:
    # print, not logging: inside a job nothing configures logging before the trainer does, and
    # submitit's job logs capture stdout; flush so lines are not lost when the job is killed.
    print(f"{LOG_PREFIX} {msg}", flush=True)


# ------------------------------------------------------------------------------------------------
# What the job asks for (the command line lives in tools/run_net.py)
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SlurmOptions:
    """The SLURM job's resources and behaviour; ``None`` follows the config or the cluster default.

    ``tools/run_net.py`` fills it from its ``--slurm*`` options (same names, dashes for
    underscores). Resources left unset follow the config: ``nodes`` = ``NUM_SHARDS``,
    ``gpus_per_node`` = ``NUM_GPUS``, tasks per node = GPUs per node (or ``NUM_CPU_PROCESSES``
    on CPU), ``cpus_per_task`` = ``DATA_LOADER.NUM_WORKERS + 1``.
    """

    dry_run: bool = False  # print the sbatch script; submit nothing
    partition: Optional[str] = None
    nodes: Optional[int] = None
    gpus_per_node: Optional[int] = None
    tasks_per_node: Optional[int] = None  # CPU clusters; on GPU it must equal gpus_per_node
    cpus_per_task: Optional[int] = None  # given to sbatch AND srun (Slurm 22.05-23.02 do not pass it on)
    mem_gb: Optional[float] = None  # per node
    timeout_min: int = 4320  # time limit of one run of the job
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    comment: Optional[str] = None
    exclude: Optional[str] = None
    signal_delay_s: int = 120  # SIGUSR2 this long before the time limit: one iteration + one save
    job_name: Optional[str] = None  # default ascnet-<TASK>
    max_num_timeout: int = 20  # requeues after reaching the time limit (preemptions do not count)
    slurm_folder: Optional[str] = None  # job files and logs (default OUTPUT_DIR/slurm/<stamp>)


# ------------------------------------------------------------------------------------------------
# Sizing the allocation
# ------------------------------------------------------------------------------------------------
def allocation_from_args(args: SlurmOptions, cfg: CfgNode) -> Tuple[int, int, int]:
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


def _mem(mem_gb: float) -> str:
    """sbatch ``--mem`` for ``mem_gb`` GB: whole GB as ``<n>GB``, otherwise ``<n>MB``."""
    return f"{int(mem_gb)}GB" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}MB"


def slurm_parameters(args: SlurmOptions, cfg: CfgNode) -> Dict[str, Any]:
    """Return the ``submitit.SlurmExecutor.update_parameters`` keywords (sbatch's names) for this run.

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
        "job_name": args.job_name or f"ascnet-{cfg.TASK}",
        "time": args.timeout_min,
        "nodes": nodes,
        "ntasks_per_node": tasks,
        "cpus_per_task": cpus,
        # Slurm 22.05 to 23.02: srun no longer inherits --cpus-per-task from sbatch, so each task
        # would get one CPU (DataLoader workers on one core). submitit 1.5.4 does not pass it to
        # srun either: give it explicitly (harmless where srun does inherit it).
        "srun_args": ["--cpus-per-task", str(cpus)],
        "signal_delay_s": args.signal_delay_s,
        # Requeue-able whatever the cluster's JobRequeue default: submitit's requeue after
        # USR2 needs it, and a node failure then requeues the job too (it resumes from OUTPUT_DIR).
        "additional_parameters": {"requeue": True},
    }
    if gpus > 0:
        params["gpus_per_node"] = gpus
    if args.mem_gb is not None:
        params["mem"] = _mem(args.mem_gb)
    for opt in ("partition", "account", "qos", "constraint", "comment", "exclude"):
        value = getattr(args, opt)
        if value:
            params[opt] = value
    return params


# ------------------------------------------------------------------------------------------------
# The job
# ------------------------------------------------------------------------------------------------
def rendezvous_port(job_id: str, restart_count: int) -> int:
    """A port for the process group's rendezvous, the same on every task of one run of a job.

    Computed from SLURM's job id and restart count, so every task finds it without talking to
    the others. Each job owns ``_PORTS_PER_JOB`` consecutive ports, one per restart (modulo), so
    two jobs on one node whose ids differ by less than 40000 / 8 = 5000 never share a port, and a
    requeued job (restart count + 1) does not reuse the port of the run it replaces, whose
    sockets may linger. A non-numeric id (never from SLURM itself) hashes into the range.
    """
    span = _MAX_PORT - _MIN_PORT
    if job_id.isdigit():
        return _MIN_PORT + (int(job_id) * _PORTS_PER_JOB + restart_count % _PORTS_PER_JOB) % span
    return random.Random(f"{job_id}:{restart_count}").randint(_MIN_PORT, _MAX_PORT)


def node_address(node: str) -> str:
    """An address of the SLURM node ``node`` that the other nodes can connect to.

    The node name itself when it resolves (DNS or /etc/hosts, as on most clusters); otherwise
    the ``NodeAddr`` that SLURM keeps for it (``scontrol show node``), as on clusters (and the
    test cluster of ``tests/slurm/start_slurm.sh``) whose node names are not host names. Every
    task asks the same question and gets the same answer.

    Raises:
        RuntimeError: the name does not resolve and SLURM gives no address for it.
    """
    try:
        socket.getaddrinfo(node, None)
        return node
    except socket.gaierror:
        pass
    try:
        res = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True, timeout=60)
        out = res.stdout if res.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    m = re.search(r"\bNodeAddr=(\S+)", out)
    if m is None:
        raise RuntimeError(
            f"The first node of the job, {node!r}, does not resolve and `scontrol show node {node}` gives "
            "no NodeAddr: the ranks cannot find the rendezvous. Make the node names resolve on every node "
            "(DNS or /etc/hosts)."
        )
    return m.group(1)


def _current_trainer() -> Any:
    """The running Trainer of this process, or None (read without importing: see preemption)."""
    return preemption.get_current_trainer()


def _run_task(cfg: CfgNode) -> None:
    """Run in every process by launch(): log the process group, then run ``cfg.TASK``."""
    from ascnet.engine.tasks import get_task

    ASCNetJob._log_process_group()
    get_task(cfg.TASK)(cfg)


def _node_name() -> str:
    """This task's SLURM node name (several node names can share one host)."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def _is_process_group_failure(e: BaseException) -> bool:
    """True for the errors torch.distributed raises when a peer is gone or a collective timed out."""
    import torch.distributed as dist

    kinds = tuple(k for k in (getattr(dist, "DistError", None),) if k is not None)
    text = f"{type(e).__name__}: {e}"
    return isinstance(e, kinds) or any(
        m in text for m in ("Connection closed by peer", "Connection reset", "Timed out", "timed out", "NCCL", "Gloo", "gloo")
    )


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
        # The rendezvous: the first node of SLURM_JOB_NODELIST (submitit parses it the same way on
        # every task), by address when its name does not resolve, on a port from the job id.
        first_node = dist_env.master_addr
        dist_env.master_addr = node_address(first_node)
        job_id = os.environ.get("SLURM_JOB_ID", job_env.job_id)  # numeric, also for array tasks
        if "MASTER_PORT" not in os.environ:
            dist_env.master_port = rendezvous_port(job_id, _restart_count())
        # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE for launch()'s join
        # mode. CUDA_VISIBLE_DEVICES stays as SLURM set it (all GPUs of the node): each process
        # selects cuda:LOCAL_RANK, which keeps NCCL's peer-to-peer paths between local GPUs.
        dist_env.export(set_cuda_visible_devices=False, overwrite=True)
        backend = cfg.DIST_BACKEND if cfg.DIST_BACKEND != "auto" else ("nccl" if cfg.NUM_GPUS > 0 else "gloo")
        _log(
            f"job {job_env.job_id} (restart {_restart_count()}) on node {_node_name()} "
            f"(host {socket.gethostname()}, pid {os.getpid()}): "
            f"rank {dist_env.rank} of world size {dist_env.world_size} (node {job_env.node} of "
            f"{job_env.num_nodes}, local rank {dist_env.local_rank}), backend {backend}, "
            f"rendezvous {dist_env.master_addr}:{dist_env.master_port} (first node {first_node}), "
            f"process group timeout {cfg.DIST_TIMEOUT_S:g} s"
        )
        # launch() joins the world described by the environment: init_distributed, seeds
        # RNG_SEED + rank, DETERMINISTIC, logging; it destroys the process group at the end.
        try:
            launch(cfg, _run_task)
        except Exception as e:  # not SystemExit: submitit's requeue after SIGUSR2 exits that way
            # The cause in this task's log in one line (the traceback follows in its stderr). A
            # broken process group means another task ended first: its log has the cause.
            _log(
                f"rank {dist_env.rank} failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                + (
                    " -- the process group broke: another task of the job ended first (it died, or rank 0 "
                    "was requeued after SIGUSR2; see the logs of the other ranks and srun's message in the "
                    "rank 0 log)"
                    if _is_process_group_failure(e) else ""
                )
            )
            raise
        _log(f"rank {dist_env.rank}: task {cfg.TASK!r} finished")

    @staticmethod
    def _log_process_group() -> None:
        """Log every rank of the group as seen by this process (proves they all joined)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            _log("process group: none (world size 1)")
            return
        members: List[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(members, (dist.get_rank(), _node_name()))
        ranks = sorted(r for r, _ in members)
        nodes = [n for _, n in sorted(members)]
        _log(f"process group ready: world size {dist.get_world_size()}, ranks {ranks}, nodes {nodes}")

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
class _ScriptOnlySlurmExecutor(submitit.SlurmExecutor):
    """A SlurmExecutor that can write sbatch scripts on a machine without SLURM (dry runs)."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def _job_folder(args: SlurmOptions, cfg: CfgNode) -> str:
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
    """The sbatch script submitit would submit for ``params`` (:func:`slurm_parameters`).

    Works without SLURM installed (nothing is submitted or written). submitit has no public
    call for the script alone: this uses two private members of ``SlurmExecutor``
    (``_make_submission_file_text``, ``_submitit_command_str``), checked with the submitit
    versions in ``SUBMITIT_CHECKED_VERSIONS``; ``tests/engine/test_slurm.py`` compares this text
    with the script a real ``submit()`` writes, and fails when they part.
    """
    executor = _ScriptOnlySlurmExecutor(folder, max_num_timeout=max_num_timeout)
    executor.update_parameters(**params)
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


def _submit_or_clean_up(folder: str, cfg: CfgNode, params: Dict[str, Any], max_num_timeout: int) -> submitit.Job:
    """Write the job folder and submit; when sbatch fails (e.g. no controller answers), remove the
    folders this call created and raise a one-line ConfigError with sbatch's own first line."""
    top = folder  # the outermost folder that mkdirs creates (OUTPUT_DIR itself when it is new)
    while not os.path.exists(os.path.dirname(top)):
        top = os.path.dirname(top)
    created = not os.path.exists(top)
    g_pathmgr.mkdirs(folder)
    sbatch_err = io.StringIO()
    try:
        save_config(cfg, os.path.join(folder, "config.yaml"))
        # SlurmExecutor, not AutoExecutor: never fall back to running locally by accident.
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_num_timeout)
        executor.update_parameters(**params)
        with contextlib.redirect_stderr(sbatch_err):  # submitit echoes sbatch's stderr there
            return executor.submit(ASCNetJob(cfg))
    except (FailedJobError, FailedSubmissionError) as e:
        if created:
            shutil.rmtree(top, ignore_errors=True)
        why = next((ln.strip() for ln in (str(e) or sbatch_err.getvalue()).splitlines() if ln.strip()), type(e).__name__)
        raise ConfigError(
            f"sbatch could not submit the job ({why}); nothing was submitted{' and ' + top + ' was removed' if created else ''}. "
            "Check that the SLURM controller answers (sinfo), then submit again."
        ) from None


def submit(args: SlurmOptions, cfg: CfgNode) -> Optional[submitit.Job]:
    """Submit the run described by ``cfg`` as a SLURM job (or print its script with --slurm-dry-run).

    Prints the job id, the job folder and the log paths of task 0.

    Args:
        args: the job's resources and behaviour (``tools/run_net.py`` fills them from its options).
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
    if args.dry_run:
        print(f"# SLURM dry run: nothing submitted. Job folder would be {folder}", flush=True)
        print(sbatch_script(folder, params, args.max_num_timeout), flush=True)
        return None
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise ConfigError(
            "--slurm needs SLURM's sbatch and srun on PATH (run from a cluster login node); use "
            "--slurm-dry-run to only print the script."
        )
    job = _submit_or_clean_up(folder, cfg, params, args.max_num_timeout)
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
