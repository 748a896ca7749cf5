#!/usr/bin/env python
"""Does ASCNet's motion projection g_m carry the appearance? (run by hand; docs/benchmarks.md,
"Motion benchmark").

SCP pulls a clip's motion prediction towards the target motion projection of the same-speed
clip whose APPEARANCE projection is nearest. If g_m's geometry follows g_a's, that positive is
close in g_m by construction and SCP is satisfied without a speed code. This script measures it
on the test videos of a pretraining run's own data, with the target network in eval mode and one
centre clip per video, built as the speed probe builds its clips (docs/evaluation.md):

* the correlation, over all pairs of different videos, between the cosine of their appearance
  projections and that of their motion projections (speed-1 clips);
* the mean motion cosine of each video to its appearance-nearest video and to a random one;
* the mean motion cosine of one video's clips at the first two of DATA.SPEEDS, from the same
  start (1.0: g_m does not tell the playback speed);
* how often the appearance-nearest video has the query's label (chance: 1 / classes).

    python benchmarks/scp_geometry.py --run output/motion_benchmark            # last checkpoint
    python benchmarks/scp_geometry.py --run output/motion_benchmark --random-init
"""
import argparse
import os

import torch

from ascnet.engine.plugins import load_config
from ascnet.evaluation.diagnostics import extract_speed_features
from ascnet.evaluation.paths import resolve_checkpoint_path
from ascnet.evaluation.retrieval import build_retrieval_dataset
from ascnet.modeling.meta_arch.build import build_model
from ascnet.modeling.weights import load_checkpoint_file
from ascnet.utils.checkpoint import load_model_state_dict


@torch.no_grad()
def projections(net, cfg):
    """Unit-norm appearance and motion projections of the test videos at each of DATA.SPEEDS,
    built as the speed probe builds its clips (one centre view of NUM_FRAMES x max(SPEEDS)
    frames, speed s keeping every s-th frame from its start).

    Returns:
        ``{"a": (N, S, d), "m": (N, S, d), "label": (N,)}``.
    """
    speeds = [int(s) for s in cfg.DATA.SPEEDS]
    c = cfg.clone()
    c.defrost()
    c.DATA.NUM_FRAMES = int(cfg.DATA.NUM_FRAMES) * max(speeds)
    ds = build_retrieval_dataset(c, cfg.TEST.SPLIT, 1, 1)
    encoders = {"a": torch.nn.Sequential(net.backbone, net.proj_a), "m": torch.nn.Sequential(net.backbone, net.proj_m)}
    out = extract_speed_features(encoders, ds, speeds, cfg.DATA.NUM_FRAMES, cfg.RETRIEVAL.BATCH_SIZE,
                                 cfg.DATA_LOADER.NUM_WORKERS)
    return {"a": out["a"][:, :, 0], "m": out["m"][:, :, 0], "label": out["label"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="OUTPUT_DIR of an ASCNet pretraining run (its config.yaml)")
    p.add_argument("--checkpoint", default="", help="default: the run's last checkpoint")
    p.add_argument("--random-init", action="store_true", help="the same model at random init (RNG_SEED)")
    args = p.parse_args(argv)
    cfg = load_config(os.path.join(args.run, "config.yaml"))
    torch.manual_seed(int(cfg.RNG_SEED))
    model = build_model(cfg)
    if not args.random_init:
        path = resolve_checkpoint_path(args.checkpoint or args.run, "--checkpoint")
        load_model_state_dict(model, load_checkpoint_file(path)["model"])
    model.eval()
    net = model.target
    p = projections(net, cfg)
    a, m, m2, y = p["a"][:, 0], p["m"][:, 0], p["m"][:, 1], p["label"]
    n = len(y)
    eye = torch.eye(n, dtype=torch.bool)
    corr = torch.corrcoef(torch.stack([(a @ a.T)[~eye], (m @ m.T)[~eye]]))[0, 1]
    nearest = (a @ a.T).masked_fill(eye, -2).argmax(1)
    g = torch.Generator().manual_seed(0)
    other = torch.randint(0, n - 1, (n,), generator=g)
    other = other + (other >= torch.arange(n)).long()  # never the video itself
    print(f"{'random init' if args.random_init else 'pretrained'} ({n} test videos): "
          f"corr(appearance cos, motion cos) over pairs {corr:.3f}; "
          f"motion cos to the appearance-nearest video {(m * m[nearest]).sum(1).mean():.3f}, to a random video "
          f"{(m * m[other]).sum(1).mean():.3f}; same video at speeds 1 and 2 {(m * m2).sum(1).mean():.3f}; "
          f"appearance-nearest has the query's label {100 * (y[nearest] == y).float().mean():.1f} %")


if __name__ == "__main__":
    main()
