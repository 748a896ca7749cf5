#!/usr/bin/env python
"""Export the backbone of an ascnet checkpoint as a bare backbone state dict.

Examples::

    # online encoder of a pretraining checkpoint -> weights for downstream runs
    python tools/export_backbone.py --checkpoint output/pretrain/checkpoint_epoch_00200.pyth \
        --out r3d18_ascnet_k400.pyth
    # backbone of a fine-tuned classifier
    python tools/export_backbone.py --checkpoint output/finetune/last.pyth --out r3d18_ucf.pyth

The output holds ``{"model": state_dict}`` with the backbone's own keys, and is accepted by
``TRAIN.CHECKPOINT_FILE_PATH`` and :func:`ascnet.modeling.weights.load_backbone_weights`.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ascnet.modeling.weights import extract_backbone_state_dict, save_backbone_weights  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (any iopath URI)")
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
        state = extract_backbone_state_dict(args.checkpoint, prefix=args.prefix)
    except (CheckpointError, WeightsError) as e:  # one line, as tools/run_net.py
        print(f"Checkpoint error: {e}", file=sys.stderr)
        return 2
    save_backbone_weights(state, args.out)
    n = sum(v.numel() for v in state.values())
    print(f"Wrote {len(state)} tensors ({n:,} values) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
