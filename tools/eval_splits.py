#!/usr/bin/env python
"""Run a downstream task on the official splits 1, 2, 3 and report each split and the mean.

Examples::

    # fine-tune and test on each UCF-101 split, then the mean (output/<...>/split{1,2,3})
    python tools/eval_splits.py --cfg configs/UCF101/ASCNet_R3D18_finetune.yaml \\
        TRAIN.CHECKPOINT_FILE_PATH output/k400_pretrain/checkpoints/checkpoint_final.pyth

    # test only, from the per-split checkpoints of an earlier run in the same OUTPUT_DIR
    python tools/eval_splits.py --cfg configs/UCF101/ASCNet_R3D18_finetune.yaml TASK test

    # some splits only
    python tools/eval_splits.py --cfg configs/HMDB51/ASCNet_R3D18_linear.yaml --splits 1 2

The summary is written to <OUTPUT_DIR>/splits_summary.json.
"""
import argparse


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cfg", required=True, help="YAML config of a finetune / linear / test / retrieval run")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3], help="split ids (default 1 2 3)")
    p.add_argument("--dry-run", action="store_true", help="print each split's TASK and OUTPUT_DIR and exit; runs nothing")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args(argv)
    from ascnet.engine.splits import run_splits, split_configs

    if args.dry_run:
        for s, cfg in split_configs(args.cfg, args.opts, args.splits).items():
            print(f"# dry run: split {s}: TASK {cfg.TASK} {cfg.TEST.DATASET} in {cfg.OUTPUT_DIR}")
        print("# Nothing was run.")
        return
    run_splits(args.cfg, args.opts, args.splits)


if __name__ == "__main__":
    main()
