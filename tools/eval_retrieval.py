#!/usr/bin/env python
"""Video retrieval evaluation of a checkpoint's backbone (test -> train, method.md section 2).

Examples::

    # UCF-101 split 1, a pretraining checkpoint, faiss search
    python tools/eval_retrieval.py --cfg configs/UCF101/ASCNet_R3D18_retrieval.yaml \\
        --checkpoint output/pretrain/checkpoints/checkpoint_epoch_00200.pyth

    # the generated dataset, with an HTML page of queries and their top-5 neighbours
    python tools/eval_retrieval.py --cfg configs/Synthetic/retrieval_quickstart.yaml \\
        --checkpoint output/quickstart/checkpoints/last.pyth --visualize

    # protocol keys on the command line (printed beside every result)
    python tools/eval_retrieval.py --cfg X.yaml RETRIEVAL.CENTER True RETRIEVAL.BACKEND torch

Without --checkpoint (and RETRIEVAL.CHECKPOINT_FILE_PATH empty) a randomly initialised backbone
is evaluated, and the output says so.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ascnet.engine.plugins import load_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cfg", required=True, help="YAML config (e.g. configs/UCF101/ASCNet_R3D18_retrieval.yaml)")
    p.add_argument("--checkpoint", default="", help="checkpoint whose backbone is evaluated (sets RETRIEVAL.CHECKPOINT_FILE_PATH)")
    p.add_argument("--visualize", action="store_true", help="write an HTML page and a PNG contact sheet (RETRIEVAL.VISUALIZE)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    opts = list(args.opts) + ["TASK", "retrieval"]
    if args.checkpoint:
        opts += ["RETRIEVAL.CHECKPOINT_FILE_PATH", args.checkpoint]
    if args.visualize:
        opts += ["RETRIEVAL.VISUALIZE", "True"]
    cfg = load_config(args.cfg, opts)
    from ascnet.engine.launch import launch
    from ascnet.engine.retrieval import run_retrieval

    launch(cfg, run_retrieval)


if __name__ == "__main__":
    main()
