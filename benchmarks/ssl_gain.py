#!/usr/bin/env python
"""Does ASCNet pretraining help on the generated dataset? (run by hand)

Three backbones, the same small 3D R18 (the quickstart's) and the same budget:

* ``ascnet``: pretrained with configs/Synthetic/ssl_gain_pretrain.yaml (the quickstart recipe on
  a generated dataset of 8 classes x 60 videos of 32 x 32 frames with one shared appearance;
  SCP positives by appearance retrieval);
* ``ascnet_random_same_speed``: the same with ``ASCNET.POSITIVE_SAMPLER random_same_speed``;
* ``random_init``: no pretraining;

plus a reference row, ``supervised``: the same backbone trained with labels from random init
(configs/Synthetic/finetune_quickstart.yaml, all layers), which tells whether the classes can
be learnt at all at this size.

Each backbone is evaluated with the linear protocol (configs/Synthetic/linear_quickstart.yaml:
frozen backbone, BN in eval mode, standardised features, linear layer trained, then 10 clips x 3
crops) and with retrieval (configs/Synthetic/retrieval_quickstart.yaml: test -> train, 10 clips,
top-k and mAP). The dataset and clip settings of the pretraining config (``DATA_KEYS``) are
passed to every downstream run, so all rows use the same videos. Everything runs with RNG_SEED
(``--seed``, default 0) and one torch thread (``--threads``). Prints a markdown table (for
docs/benchmarks.md, section "SSL gain on the generated dataset") and writes <out>/ssl_gain.json.
About 14 minutes on two shared CPU cores.

    python benchmarks/ssl_gain.py [--out output/ssl_gain] [--seed 0] [--only ascnet random_init]
"""
import argparse
import json
import os
import platform
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(REPO, "configs", "Synthetic")
PRETRAIN_CFG = os.path.join(CFG, "ssl_gain_pretrain.yaml")
# Keys of the pretraining config copied into the linear and retrieval runs.
DATA_KEYS = (
    "DATA.SYNTHETIC.NUM_CLASSES",
    "DATA.SYNTHETIC.VIDEOS_PER_CLASS",
    "DATA.SYNTHETIC.NUM_FRAMES",
    "DATA.SYNTHETIC.SIZE",
    "DATA.SYNTHETIC.SEED",
    "DATA.SYNTHETIC.APPEARANCE",
    "DATA.NUM_FRAMES",
    "DATA.SAMPLING_RATE",
    "DATA.TARGET_FPS",
    "DATA.CROP_SIZE",
    "DATA.TEST_CROP_SIZE",
    "DATA.TEST_SHORT_SIDE",
    "AUG.RRC_SCALE",
)


def _get(cfg, key):
    for k in key.split("."):
        cfg = cfg[k]
    return cfg


def _data_opts(pre_opts):
    """DATA_KEYS of the pretraining config (with the command-line overrides) as KEY VALUE pairs."""
    from ascnet.engine.plugins import load_config

    cfg = load_config(PRETRAIN_CFG, pre_opts)
    out = []
    for k in DATA_KEYS:
        v = _get(cfg, k)
        out += [k, str(list(v)) if isinstance(v, (list, tuple)) else str(v)]
    return out + ["MODEL.NUM_CLASSES", str(cfg.DATA.SYNTHETIC.NUM_CLASSES)], cfg


def _run(cfg_path, opts):
    from ascnet.engine.plugins import load_config
    from ascnet.engine.launch import launch
    from ascnet.engine.tasks import get_task

    cfg = load_config(cfg_path, opts)
    t = time.perf_counter()
    launch(cfg, get_task(cfg.TASK))
    return cfg, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "output", "ssl_gain"))
    p.add_argument("--data", default="", help="generated dataset folder (default <out>/synthetic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrain-epochs", type=int, default=0, help="0: SOLVER.MAX_EPOCH of the config")
    p.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides of the pretraining config")
    p.add_argument("--linear-epochs", type=int, default=20)
    p.add_argument("--test-crops", type=int, default=3)
    p.add_argument("--linear-lr", type=float, default=0.005,
                   help="LINEAR.BASE_LR (at batch 16); the recipe's 0.1 diverges on standardised 128-d features")
    p.add_argument("--reuse-pretrain", action="store_true", help="keep a pretraining checkpoint already under --out")
    p.add_argument("--supervised-epochs", type=int, default=30,
                   help="reference row: the same backbone trained with labels from random init (all layers; 0 = skip)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the training process (1: steady timings on a shared machine; 0: torch default)")
    p.add_argument("--only", nargs="*", default=[], help="subset of the conditions")
    args = p.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    data = args.data or os.path.join(args.out, "synthetic")
    common = ["DATA.PATH_TO_DATA_DIR", data, "RNG_SEED", str(args.seed)]
    pre_common = common + list(args.opts)
    if args.pretrain_epochs:
        pre_common += ["SOLVER.MAX_EPOCH", str(args.pretrain_epochs)]
    data_opts, pre_cfg = _data_opts(pre_common)
    eval_common = common + data_opts
    conditions = {
        "ascnet": ["ASCNET.POSITIVE_SAMPLER", "appearance_retrieval"],
        "ascnet_random_same_speed": ["ASCNET.POSITIVE_SAMPLER", "random_same_speed"],
        "random_init": None,
    }
    if args.only:
        conditions = {k: v for k, v in conditions.items() if k in args.only}
    results = {}
    t0 = time.perf_counter()
    for name, pre_opts in conditions.items():
        row = {}
        ckpt = ""
        if pre_opts is not None:
            pre_dir = os.path.join(args.out, name, "pretrain")
            if args.reuse_pretrain and os.path.isdir(os.path.join(pre_dir, "checkpoints")):
                row["pretrain_s"] = 0.0
            else:
                    _, row["pretrain_s"] = _run(PRETRAIN_CFG, pre_common + pre_opts + [
                    "OUTPUT_DIR", pre_dir, "TENSORBOARD.ENABLE", "False", "TRAIN.AUTO_RESUME", "False"])
            ckpt = pre_dir
        lin_dir = os.path.join(args.out, name, "linear")
        cfg, row["linear_s"] = _run(os.path.join(CFG, "linear_quickstart.yaml"), eval_common + [
            "OUTPUT_DIR", lin_dir, "TRAIN.CHECKPOINT_FILE_PATH", ckpt, "LINEAR.MAX_EPOCH", str(args.linear_epochs),
            "LINEAR.BASE_LR", str(args.linear_lr),
            "TEST.NUM_SPATIAL_CROPS", str(args.test_crops), "TENSORBOARD.ENABLE", "False", "TRAIN.AUTO_RESUME", "False"])
        with open(os.path.join(lin_dir, f"test_results_split{cfg.DATA.SPLIT_ID}.json")) as f:
            row["linear"] = json.load(f)["results"]
        ret_dir = os.path.join(args.out, name, "retrieval")
        _, row["retrieval_s"] = _run(os.path.join(CFG, "retrieval_quickstart.yaml"), eval_common + [
            "OUTPUT_DIR", ret_dir, "RETRIEVAL.CHECKPOINT_FILE_PATH", ckpt, "RETRIEVAL.USE_CACHE", "False"])
        (js,) = [x for x in os.listdir(ret_dir) if x.endswith(".json")]
        with open(os.path.join(ret_dir, js)) as f:
            row["retrieval"] = json.load(f)["results"]
        results[name] = row
        print(name, json.dumps(row), flush=True)
    if args.supervised_epochs > 0 and (not args.only or "supervised" in args.only):
        sup_dir = os.path.join(args.out, "supervised")
        cfg, sup_s = _run(os.path.join(CFG, "finetune_quickstart.yaml"), eval_common + [
            "OUTPUT_DIR", sup_dir, "TRAIN.CHECKPOINT_FILE_PATH", "", "FINETUNE.MAX_EPOCH", str(args.supervised_epochs),
            "TEST.NUM_SPATIAL_CROPS", str(args.test_crops), "TENSORBOARD.ENABLE", "False", "TRAIN.AUTO_RESUME", "False"])
        with open(os.path.join(sup_dir, f"test_results_split{cfg.DATA.SPLIT_ID}.json")) as f:
            results["supervised"] = {"linear": json.load(f)["results"], "finetune_s": sup_s}
        print("supervised", json.dumps(results["supervised"]), flush=True)
    total = time.perf_counter() - t0
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), torch threads {args.threads or 'default'}; seed {args.seed}; "
        f"pretraining {pre_cfg.SOLVER.MAX_EPOCH} epochs (ssl_gain_pretrain.yaml), linear protocol {args.linear_epochs} epochs at lr {args.linear_lr:g}, "
        f"test 10 clips x {args.test_crops} crops; retrieval 10 clips x 1 crop, split 1; supervised reference "
        f"{args.supervised_epochs} epochs; total {total / 60:.1f} min.",
        "",
        "| backbone | linear top-1 | linear top-5 | retrieval top-1 | top-5 | top-10 | mAP | pretrain (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lin, ret = r["linear"], r.get("retrieval")
        if ret is None:  # the supervised reference: fine-tuned, no retrieval
            lines.append(f"| {name} (all layers, labels) | {lin['top1']:.1f} | {lin['top5']:.1f} | - | - | - | - | - |")
            continue
        lines.append(
            f"| {name} | {lin['top1']:.1f} | {lin['top5']:.1f} | {ret['top1']:.1f} | {ret['top5']:.1f} | "
            f"{ret['top10']:.1f} | {ret['mAP']:.1f} | {r.get('pretrain_s', 0):.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ssl_gain.json"), "w") as f:
        json.dump({"results": results, "table": table, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
