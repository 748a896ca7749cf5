#!/usr/bin/env python
"""Video retrieval evaluation of a checkpoint's backbone (test -> train, method.md section 2).

Examples::

    # UCF-101 split 1, a pretraining checkpoint, faiss search
    python tools/eval_retrieval.py --cfg configs/UCF101/ASCNet_R3D18_retrieval.yaml \\
        --checkpoint output/pretrain/checkpoints/checkpoint_epoch_00200.pyth

    # the generated dataset, with an HTML page of queries and their top-5 neighbours (a run's
    # OUTPUT_DIR names its newest checkpoint)
    python tools/eval_retrieval.py --cfg configs/Synthetic/retrieval_quickstart.yaml \\
        --checkpoint output/quickstart --visualize

    # protocol keys on the command line (printed beside every result)
    python tools/eval_retrieval.py --cfg X.yaml RETRIEVAL.CENTER True RETRIEVAL.BACKEND torch

Without --checkpoint (and RETRIEVAL.CHECKPOINT_FILE_PATH empty) a randomly initialised backbone
is evaluated, and the output says so.
"""
import argparse
import sys

from ascnet.config import misplaced_options
from ascnet.engine.plugins import load_config


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cfg", required=True, help="YAML config (e.g. configs/UCF101/ASCNet_R3D18_retrieval.yaml)")
    p.add_argument("--checkpoint", default="", help="checkpoint whose backbone is evaluated (sets RETRIEVAL.CHECKPOINT_FILE_PATH)")
    p.add_argument("--visualize", action="store_true", help="write an HTML page and a PNG contact sheet (RETRIEVAL.VISUALIZE)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit; reads nothing")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args(argv)
    late = misplaced_options(p, args.opts)
    if late:
        p.error(f"{' '.join(late)}: options go before the KEY VALUE overrides (everything after the first "
                "override is read as overrides).")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    opts = list(args.opts) + ["TASK", "retrieval"]
    if args.checkpoint:
        opts += ["RETRIEVAL.CHECKPOINT_FILE_PATH", args.checkpoint]
    if args.visualize:
        opts += ["RETRIEVAL.VISUALIZE", "True"]
    cfg = load_config(args.cfg, opts)
    if args.dry_run:
        print(cfg.dump(), end="")
        print(f"# dry run: TASK retrieval, checkpoint {cfg.RETRIEVAL.CHECKPOINT_FILE_PATH or '(random init)'!s}, "
              f"OUTPUT_DIR {cfg.OUTPUT_DIR}. Nothing was run.")
        return 0
    from ascnet.engine.launch import launch
    from ascnet.engine.retrieval import run_retrieval
    from ascnet.utils.checkpoint import CheckpointError

    try:
        launch(cfg, run_retrieval)
    except CheckpointError as e:  # the same one-line message as tools/run_net.py
        print(f"Checkpoint error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
