#!/usr/bin/env python
"""Export the backbone of an ascnet checkpoint as a bare backbone state dict.

Examples::

    # online encoder of a pretraining checkpoint -> weights for downstream runs
    python tools/export_backbone.py --checkpoint output/pretrain/checkpoints/checkpoint_epoch_00200.pyth \\
        --out r3d18_ascnet_k400.pyth
    # backbone of a fine-tuned classifier: a run's OUTPUT_DIR names its newest checkpoint
    python tools/export_backbone.py --checkpoint output/finetune --out r3d18_ucf.pyth

The output holds ``{"model": state_dict}`` with the backbone's own keys, and is accepted by
``TRAIN.CHECKPOINT_FILE_PATH`` and :func:`ascnet.modeling.weights.load_backbone_weights`.
"""
import argparse
import logging
import sys

from ascnet.evaluation.paths import resolve_checkpoint_path
from ascnet.modeling.weights import extract_backbone_state_dict, save_backbone_weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint", required=True,
        help="checkpoint file (any iopath URI), or a run's OUTPUT_DIR (its newest checkpoint)",
    )
    parser.add_argument("--out", required=True, help="where to write the backbone weights")
    parser.add_argument(
        "--prefix", default=None,
        help="key prefix of the backbone in the checkpoint (default: online.backbone., backbone., ...)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ascnet.modeling.weights import WeightsError
    from ascnet.utils.checkpoint import CheckpointError

    try:
        path = resolve_checkpoint_path(args.checkpoint, "--checkpoint")
        state = extract_backbone_state_dict(path, prefix=args.prefix)
    except (FileNotFoundError, CheckpointError, WeightsError) as e:  # one line, as tools/run_net.py
        print(f"Checkpoint error: {e}", file=sys.stderr)
        return 2
    save_backbone_weights(state, args.out)
    n = sum(v.numel() for v in state.values())
    print(f"Wrote {len(state)} tensors ({n:,} values) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
