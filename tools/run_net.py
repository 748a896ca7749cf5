#!/usr/bin/env python
"""Run an ascnet task (pretrain, finetune, linear, test, retrieval) from a config file.

A thin entry point: parse the command line, load the config (YAML with _BASE_ + KEY VALUE
overrides), then start the processes of the run (``ascnet.engine.launch.launch``) and call
the task named by ``TASK`` in each. ``--slurm`` submits the same run to SLURM instead.
"""
import argparse
import gc
import os
import sys

EPILOG = """examples:
  # quickstart: pretrain a tiny ASCNet on the generated dataset (CPU, a few minutes)
  python tools/run_net.py --cfg configs/Synthetic/ASCNet_R3D18_quickstart.yaml

  # show the resolved config without running anything
  python tools/run_net.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml --dry-run

  # Kinetics-400 pretraining on 8 GPUs, with overrides (KEY VALUE pairs, or after --opts)
  python tools/run_net.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml \\
      DATA.PATH_TO_DATA_DIR /data/kinetics400 OUTPUT_DIR ./output/k400_r3d18

  # continue an interrupted run from the last checkpoint in OUTPUT_DIR
  python tools/run_net.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml --resume OUTPUT_DIR ./output/k400_r3d18

  # two machines: run on each, with its SHARD_ID
  python tools/run_net.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml \\
      NUM_SHARDS 2 SHARD_ID 0 DIST_URL tcp://node0:29500

  # multi-process training on CPU (gloo), e.g. to test distributed code without GPUs
  python tools/run_net.py --cfg configs/Synthetic/ASCNet_R3D18_quickstart.yaml NUM_CPU_PROCESSES 2

  # submit to SLURM (requeued on preemption, resumes exactly)
  python tools/run_net.py --cfg configs/Kinetics/ASCNet_R3D18_16x112.yaml --slurm --nodes 2 --gpus-per-node 8
"""


def add_slurm_args(parser: argparse.ArgumentParser, defaults) -> argparse.ArgumentParser:
    """Add the SLURM options (``--slurm``, ``--slurm-dry-run``, resources) to ``parser``.

    Each option is a field of ``ascnet.engine.slurm.SlurmOptions`` (dashes for underscores;
    ``--slurm-dry-run`` is ``dry_run``, as ``--dry-run`` prints the config); ``defaults`` is a ``SlurmOptions()``, whose values the
    options default to. Resources left unset follow the config: ``--nodes`` = ``NUM_SHARDS``,
    ``--gpus-per-node`` = ``NUM_GPUS``, tasks per node = GPUs per node (or
    ``NUM_CPU_PROCESSES`` on CPU). :func:`slurm_options` turns the parsed options back into one.

    Returns:
        The same parser (for chaining).
    """
    d = defaults
    g = parser.add_argument_group(
        "SLURM (submitit)",
        "Submit the run as a SLURM job instead of running it here. The job is requeued on "
        "preemption/time-out and resumes exactly from its checkpoint (see docs/slurm.md).",
    )
    g.add_argument("--slurm", action="store_true", help="Submit to SLURM and return.")
    g.add_argument(
        "--slurm-dry-run", action="store_true",
        help="Print the sbatch script that would be submitted; submit nothing.",
    )
    g.add_argument("--partition", default=d.partition, help="SLURM partition (default: the cluster's default).")
    g.add_argument("--nodes", type=int, default=d.nodes, help="Nodes (default: NUM_SHARDS).")
    g.add_argument(
        "--gpus-per-node", type=int, default=d.gpus_per_node, help="GPUs per node, one task each (default: NUM_GPUS)."
    )
    g.add_argument(
        "--tasks-per-node",
        type=int,
        default=d.tasks_per_node,
        help="Processes per node on CPU clusters (default: NUM_CPU_PROCESSES); on GPU it must equal --gpus-per-node.",
    )
    g.add_argument(
        "--cpus-per-task",
        type=int,
        default=d.cpus_per_task,
        help="CPUs per task, for sbatch and srun (default: DATA_LOADER.NUM_WORKERS + 1).",
    )
    g.add_argument("--mem-gb", type=float, default=d.mem_gb, help="Memory per node in GB (default: the cluster's).")
    g.add_argument("--timeout-min", type=int, default=d.timeout_min, help="Time limit of one run of the job, minutes.")
    g.add_argument("--account", default=d.account, help="SLURM account.")
    g.add_argument("--qos", default=d.qos, help="SLURM quality of service.")
    g.add_argument("--constraint", default=d.constraint, help="SLURM node constraint (e.g. volta32gb).")
    g.add_argument("--comment", default=d.comment, help="SLURM job comment.")
    g.add_argument("--exclude", default=d.exclude, help="Nodes to exclude (SLURM node list).")
    g.add_argument(
        "--signal-delay-s",
        type=int,
        default=d.signal_delay_s,
        help="Seconds between SIGUSR2 and the kill at the time limit; must cover one iteration plus a checkpoint save.",
    )
    g.add_argument("--job-name", default=d.job_name, help="Job name (default: ascnet-<TASK>).")
    g.add_argument(
        "--max-num-timeout",
        type=int,
        default=d.max_num_timeout,
        help="How many times the job may be requeued after reaching its time limit (preemptions do not count).",
    )
    g.add_argument(
        "--slurm-folder",
        default=d.slurm_folder,
        help="Folder (on storage shared by the nodes) for the job's sbatch script, pickles and logs "
        "(default: OUTPUT_DIR/slurm/<submission time>).",
    )
    return parser


def slurm_options(args: argparse.Namespace):
    """The ``ascnet.engine.slurm.SlurmOptions`` of the parsed command line."""
    import dataclasses

    from ascnet.engine.slurm import SlurmOptions

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SlurmOptions) if f.name != "dry_run"}
    return SlurmOptions(dry_run=args.slurm_dry_run, **values)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (the SLURM options need submitit: without it ``--slurm`` says so)."""
    parser = argparse.ArgumentParser(
        prog="run_net.py",
        description="Run an ascnet task (TASK in the config: pretrain | finetune | linear | test | retrieval).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cfg", dest="cfg_file", required=True, metavar="FILE", help="Config YAML (any iopath URI).")
    parser.add_argument("--resume", action="store_true", help="Set TRAIN.AUTO_RESUME True (continue from OUTPUT_DIR).")
    parser.add_argument(
        "--dry-run", action="store_true", help="Print the resolved config and exit; builds and runs nothing."
    )
    parser.add_argument(
        "--opts", dest="opts_flag", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
        help="Config overrides (same as giving KEY VALUE pairs after the options).",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="Config overrides, e.g. SOLVER.BASE_LR 0.05.")
    try:
        from ascnet.engine.slurm import SlurmOptions
    except ImportError as e:  # SLURM support needs submitit
        reason = str(e)
        parser.add_argument(
            "--slurm", action="store_true", help=f"Submit to SLURM (not available here: {reason})."
        )
        parser.set_defaults(_slurm_unavailable=reason)
    else:
        add_slurm_args(parser, SlurmOptions())
    return parser


def last_line(message: str) -> str:
    """The error's own line: an exception re-raised from a DataLoader worker carries the worker's
    traceback in its message ("Caught X in DataLoader worker process 0. Original Traceback ...");
    its last line is the original ``module.X: message``."""
    if "Original Traceback" not in message:
        return message
    last = message.strip().splitlines()[-1]
    return last.split(": ", 1)[-1]


def log_traceback(exc: BaseException) -> None:
    """Write ``exc``'s full traceback to log.txt (the ``ascnet`` logger's file handlers), not the console."""
    import logging

    log = logging.getLogger("ascnet")
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "The run stopped on this error:", (),
                            (type(exc), exc, exc.__traceback__))
    for h in log.handlers:  # log.txt (rank 0) or log.txt.rank<r>; never the console
        name = str(getattr(getattr(h, "stream", None), "name", ""))
        if os.path.basename(name).startswith("log.txt"):
            h.handle(record)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ascnet.config import ConfigError, misplaced_options
    from ascnet.engine.plugins import load_config

    opts = list(args.opts or []) + list(args.opts_flag or [])
    late = misplaced_options(parser, opts)
    if late:
        print(
            f"{' '.join(late)}: options go before the KEY VALUE overrides, e.g. run_net.py --cfg FILE "
            f"{' '.join(late)} SOLVER.BASE_LR 0.05 (everything after the first override is read as overrides).",
            file=sys.stderr,
        )
        return 2
    if args.resume:
        opts += ["TRAIN.AUTO_RESUME", "True"]
    try:
        cfg = load_config(args.cfg_file, opts)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        return 2

    if args.dry_run:
        world = (cfg.NUM_GPUS or cfg.NUM_CPU_PROCESSES) * cfg.NUM_SHARDS
        print(cfg.dump(), end="")
        print(
            f"# dry run: TASK {cfg.TASK}, {world} process(es) "
            f"({'NUM_GPUS' if cfg.NUM_GPUS else 'NUM_CPU_PROCESSES'} x NUM_SHARDS), "
            f"{cfg.TRAIN.BATCH_SIZE // world} videos per process and step, OUTPUT_DIR {cfg.OUTPUT_DIR}. Nothing was run."
        )
        return 0

    if getattr(args, "slurm", False) or getattr(args, "slurm_dry_run", False):
        reason = getattr(args, "_slurm_unavailable", None)
        if reason:
            print(f"--slurm is not available: {reason}. Install submitit (pip install submitit).", file=sys.stderr)
            return 2
        from ascnet.engine.slurm import submit

        try:
            submit(slurm_options(args), cfg)
        except ConfigError as e:
            print(f"SLURM error: {e}", file=sys.stderr)
            return 2
        return 0

    from torch.multiprocessing import ProcessRaisedException

    from ascnet.engine.launch import LaunchError, launch
    from ascnet.engine.preemption import Terminated, stop_on_signals
    from ascnet.engine.tasks import get_task
    from ascnet.data.datasets.base import DataFailureError
    from ascnet.data.utils import AnnotationError
    from ascnet.engine.trainer import NonFiniteLossError
    from ascnet.modeling.weights import WeightsError
    from ascnet.utils.checkpoint import CheckpointError
    from ascnet.utils.io import OutputWriteError
    from ascnet.utils.run_lock import RunLockError

    # Errors whose message is one line naming the file and the fix: printed under their title
    # with exit code 2; the traceback goes to log.txt only. One table for this process and for a
    # spawned rank, whose error arrives as text (docs/engine.md, "When things fail").
    one_line = ((CheckpointError, "Checkpoint error"), (AnnotationError, "Dataset error"), (OutputWriteError, "Output error"),
                (RunLockError, "Output folder in use"), (DataFailureError, "Data error"), (WeightsError, "Weights error"))
    try:
        with stop_on_signals():
            launch(cfg, get_task(cfg.TASK))
    except (KeyboardInterrupt, Terminated) as e:
        name, code = ("SIGINT", 130) if isinstance(e, KeyboardInterrupt) else ("SIGTERM", 143)
        print(f"Stopped by {name}; the checkpoints saved in {cfg.OUTPUT_DIR} are kept (continue with --resume).", file=sys.stderr)
        return code
    except LaunchError as e:
        print(f"Launch error: {e}", file=sys.stderr)
        return 2
    except tuple(kind for kind, _ in one_line) as e:
        title = next(t for kind, t in one_line if isinstance(e, kind))
        log_traceback(e)
        print(f"{title}: {last_line(str(e))}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:  # already logged; no traceback for a diverged run
        print(f"Training stopped: {e}", file=sys.stderr)
        return 3
    except ProcessRaisedException as e:
        last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        if "NonFiniteLossError" in last:
            print(f"Training stopped on rank {e.error_index}: {last.split(': ', 1)[-1]}", file=sys.stderr)
            return 3
        for kind, title in one_line:
            if kind.__name__ in last.split(": ", 1)[0]:
                log_traceback(e)
                print(f"{title}: {last.split(': ', 1)[-1]}", file=sys.stderr)
                return 2
        raise
    return 0


if __name__ == "__main__":
    code = main()
    # A loader iterator caught in a failed run's reference cycles (traceback -> frame -> iterator)
    # would survive to interpreter exit, where multiprocessing terminates its workers and torch's
    # SIGCHLD handler prints a "worker killed by signal: Terminated" traceback: collect it now,
    # so that it stops its workers itself.
    gc.collect()
    sys.exit(code)
