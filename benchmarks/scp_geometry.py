#!/usr/bin/env python
"""Does ASCNet's motion projection g_m carry the appearance? (run by hand; docs/benchmarks.md,
"Motion benchmark").

SCP pulls a clip's motion prediction towards the target motion projection of the same-speed
clip whose APPEARANCE projection is nearest. If g_m's geometry follows g_a's, that positive is
close in g_m by construction and SCP is satisfied without a speed code. This script measures it
on the test videos of a pretraining run's own data, with the target network in eval mode and one
centre clip per video:

* the correlation, over all pairs of different videos, between the cosine of their appearance
  projections and that of their motion projections (speed-1 clips);
* the mean motion cosine of each video to its appearance-nearest video and to a random one;
* the mean motion cosine of one video's clips at speed 1 and at speed 2 (1.0: g_m does not
  tell the playback speed);
* how often the appearance-nearest video has the query's label (chance: 1 / classes).

    python benchmarks/scp_geometry.py --run output/motion_benchmark            # last checkpoint
    python benchmarks/scp_geometry.py --run output/motion_benchmark --random-init
"""
import argparse
import os

import torch
import torch.nn.functional as F

from ascnet.config import get_cfg
from ascnet.data.batch_augment import normalize_clips
from ascnet.data.build import build_dataset
from ascnet.modeling.meta_arch.build import build_model
from ascnet.evaluation.paths import resolve_checkpoint_path
from ascnet.modeling.weights import load_checkpoint_file


@torch.no_grad()
def projections(net, cfg, speed):
    """(N, d) appearance and motion projections (unit rows) and (N,) labels of the test videos,
    one centre clip each at playback ``speed`` (SAMPLING_RATE x speed)."""
    c = cfg.clone()
    c.defrost()
    c.DATA.SAMPLING_RATE = int(cfg.DATA.SAMPLING_RATE) * speed
    ds = build_dataset(c, cfg.TEST.SPLIT, "test")
    a, m, y = [], [], []
    for i in range(len(ds)):
        s = ds[i]
        x = s["clips"][:1]
        x = normalize_clips(x, cfg.DATA.MEAN, cfg.DATA.STD) if x.dtype == torch.uint8 else x
        f = net.backbone(x)
        a.append(F.normalize(net.proj_a(f), dim=1))
        m.append(F.normalize(net.proj_m(f), dim=1))
        y.append(int(s["label"]))
    return torch.cat(a), torch.cat(m), torch.tensor(y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="OUTPUT_DIR of an ASCNet pretraining run (its config.yaml)")
    p.add_argument("--checkpoint", default="", help="default: the run's last checkpoint")
    p.add_argument("--random-init", action="store_true", help="the same model at random init (RNG_SEED)")
    args = p.parse_args(argv)
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(args.run, "config.yaml"))
    torch.manual_seed(int(cfg.RNG_SEED))
    model = build_model(cfg)
    if not args.random_init:
        path = resolve_checkpoint_path(args.checkpoint or args.run, "--checkpoint")
        model.load_state_dict(load_checkpoint_file(path)["model"])
    model.eval()
    net = model.target
    a, m, y = projections(net, cfg, 1)
    _, m2, _ = projections(net, cfg, 2)
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
