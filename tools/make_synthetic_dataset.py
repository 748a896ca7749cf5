#!/usr/bin/env python
"""Generate the synthetic motion dataset (UCF-101 layout) ahead of a run.

Examples::

    # the defaults of DATA.SYNTHETIC (8 classes x 20 videos x 48 frames x 64 px, .avi/MPEG-4)
    python tools/make_synthetic_dataset.py --out datasets/synthetic
    # larger and in H.264, the way a config would ask for it
    python tools/make_synthetic_dataset.py --cfg configs/Synthetic/ASCNet_R3D18_quickstart.yaml \\
        DATA.SYNTHETIC.SIZE 128 DATA.SYNTHETIC.FORMAT .mp4
    # explicit parameters
    python tools/make_synthetic_dataset.py --out /tmp/syn --num-classes 10 --videos-per-class 30 \\
        --num-frames 64 --size 112 --format .mp4 --seed 3

The dataset classes are motions (see ascnet/data/synthetic.py). Training on it with
``TRAIN.DATASET Synthetic`` generates it automatically when missing; this tool is for doing it
once up front (e.g. before starting many SLURM tasks).
"""
import argparse
import sys
from dataclasses import asdict

from ascnet.data.synthetic import SyntheticSpec, ensure_synthetic_dataset
from ascnet.engine.plugins import load_config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default=None, help="config whose DATA.PATH_TO_DATA_DIR and DATA.SYNTHETIC.* are used")
    p.add_argument("--out", default=None, help="output folder (default: DATA.PATH_TO_DATA_DIR of the config)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--videos-per-class", type=int)
    p.add_argument("--num-frames", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--fps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--format", choices=[".avi", ".mp4"])
    p.add_argument("--dry-run", action="store_true", help="print the dataset parameters and exit; writes nothing")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = p.parse_args(argv)
    cfg = load_config(args.cfg, args.opts, validate=False)
    spec = SyntheticSpec.from_cfg(cfg)
    for field in ("num_classes", "videos_per_class", "num_frames", "size", "fps", "seed", "format"):
        v = getattr(args, field)
        if v is not None:
            setattr(spec, field, v)
    out = args.out or cfg.DATA.PATH_TO_DATA_DIR
    if not out:
        p.error("give --out or a config with DATA.PATH_TO_DATA_DIR")
    if args.dry_run:
        try:
            spec.check()
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"# dry run: would generate {out} {asdict(spec)}. Nothing was written.")
        return 0
    try:
        made = ensure_synthetic_dataset(out, spec, auto_generate=True, progress=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(("Generated" if made else "Already complete:") + f" {out} {asdict(spec)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
