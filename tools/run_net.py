#!/usr/bin/env python
"""Run an ascnet task (pretrain, finetune, linear, test, retrieval) from a config file.

A thin entry point: parse the command line, load the config (YAML with _BASE_ + KEY VALUE
overrides), then start the processes of the run (``ascnet.engine.launch.launch``) and call
the task named by ``TASK`` in each. ``--slurm`` submits the same run to SLURM instead.
"""
import argparse
import os
import sys

# Run from a source checkout without installing: make the repository importable.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

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


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (SLURM options come from ``ascnet.engine.slurm`` when present)."""
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
        from ascnet.engine.slurm import add_slurm_args
    except ImportError as e:  # SLURM support needs submitit
        reason = str(e)
        parser.add_argument(
            "--slurm", action="store_true", help=f"Submit to SLURM (not available here: {reason})."
        )
        parser.set_defaults(_slurm_unavailable=reason)
    else:
        add_slurm_args(parser)
    return parser


def misplaced_options(parser: argparse.ArgumentParser, opts) -> list:
    """Options of ``parser`` found among the KEY VALUE overrides (argparse takes every word after
    the first override as an override, so ``... SOLVER.BASE_LR 0.05 --dry-run`` would not run
    dry)."""
    known = set(parser._option_string_actions) - {"--opts"}
    return [o for o in opts if isinstance(o, str) and o.split("=", 1)[0] in known]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ascnet.config import ConfigError, load_config

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
            submit(args, cfg)
        except ConfigError as e:
            print(f"SLURM error: {e}", file=sys.stderr)
            return 2
        return 0

    from torch.multiprocessing import ProcessRaisedException

    from ascnet.engine.launch import LaunchError, launch
    from ascnet.engine.tasks import get_task
    from ascnet.data.utils import AnnotationError
    from ascnet.engine.trainer import NonFiniteLossError
    from ascnet.utils.checkpoint import CheckpointError

    try:
        launch(cfg, get_task(cfg.TASK))
    except LaunchError as e:
        print(f"Launch error: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:  # already logged where it matters (log.txt); no traceback
        print(f"Checkpoint error: {e}", file=sys.stderr)
        return 2
    except AnnotationError as e:  # names the file and the line
        print(f"Dataset error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:  # already logged; no traceback for a diverged run
        print(f"Training stopped: {e}", file=sys.stderr)
        return 3
    except ProcessRaisedException as e:
        last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        if "NonFiniteLossError" in last:
            print(f"Training stopped on rank {e.error_index}: {last.split(': ', 1)[-1]}", file=sys.stderr)
            return 3
        for kind, title in (("CheckpointError", "Checkpoint error"), ("AnnotationError", "Dataset error")):
            if kind in last.split(": ", 1)[0]:
                print(f"{title}: {last.split(': ', 1)[-1]}", file=sys.stderr)
                return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
