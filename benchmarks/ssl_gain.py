#!/usr/bin/env python
"""Does ASCNet pretraining help on the generated dataset? (run by hand)

Three backbones, the same small 3D R18 (configs/Synthetic/ASCNet_R3D18_quickstart.yaml) and the
same budget:

* ``ascnet``: pretrained with the quickstart recipe (SCP positives by appearance retrieval);
* ``ascnet_random_same_speed``: the same with ``ASCNET.POSITIVE_SAMPLER random_same_speed``;
* ``random_init``: no pretraining.

Each is evaluated with the linear protocol (configs/Synthetic/linear_quickstart.yaml: frozen
backbone, BN in eval mode, linear layer trained, then multi-view test) and with retrieval
(configs/Synthetic/retrieval_quickstart.yaml: test -> train, 10 clips, top-k and mAP). Everything
runs with RNG_SEED (default 0). Prints a markdown table (for docs/benchmarks.md, section
"SSL gain on the generated dataset") and writes <out>/ssl_gain.json.

    python benchmarks/ssl_gain.py [--out output/ssl_gain] [--pretrain-epochs 6] [--linear-epochs 20]
"""
import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(REPO, "configs", "Synthetic")


def _run(cfg_path, opts):
    from ascnet.config import load_config
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
    p.add_argument("--pretrain-epochs", type=int, default=6)
    p.add_argument("--linear-epochs", type=int, default=20)
    p.add_argument("--test-crops", type=int, default=3)
    p.add_argument("--only", nargs="*", default=[], help="subset of the conditions")
    args = p.parse_args()
    data = args.data or os.path.join(args.out, "synthetic")
    common = ["DATA.PATH_TO_DATA_DIR", data, "RNG_SEED", str(args.seed)]
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
            _, row["pretrain_s"] = _run(os.path.join(CFG, "ASCNet_R3D18_quickstart.yaml"), common + pre_opts + [
                "OUTPUT_DIR", pre_dir, "SOLVER.MAX_EPOCH", str(args.pretrain_epochs), "TENSORBOARD.ENABLE", "False"])
            ckpt = pre_dir
        lin_dir = os.path.join(args.out, name, "linear")
        cfg, row["linear_s"] = _run(os.path.join(CFG, "linear_quickstart.yaml"), common + [
            "OUTPUT_DIR", lin_dir, "TRAIN.CHECKPOINT_FILE_PATH", ckpt, "LINEAR.MAX_EPOCH", str(args.linear_epochs),
            "TEST.NUM_SPATIAL_CROPS", str(args.test_crops), "TENSORBOARD.ENABLE", "False", "TRAIN.AUTO_RESUME", "False"])
        with open(os.path.join(lin_dir, f"test_results_split{cfg.DATA.SPLIT_ID}.json")) as f:
            row["linear"] = json.load(f)["results"]
        ret_dir = os.path.join(args.out, name, "retrieval")
        _, row["retrieval_s"] = _run(os.path.join(CFG, "retrieval_quickstart.yaml"), common + [
            "OUTPUT_DIR", ret_dir, "RETRIEVAL.CHECKPOINT_FILE_PATH", ckpt, "RETRIEVAL.USE_CACHE", "False"])
        (js,) = [x for x in os.listdir(ret_dir) if x.endswith(".json")]
        with open(os.path.join(ret_dir, js)) as f:
            row["retrieval"] = json.load(f)["results"]
        results[name] = row
        print(name, json.dumps(row), flush=True)
    total = time.perf_counter() - t0
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), torch threads default; seed {args.seed}; "
        f"pretraining {args.pretrain_epochs} epochs (quickstart recipe), linear protocol {args.linear_epochs} epochs, "
        f"test 10 clips x {args.test_crops} crops; retrieval 10 clips x 1 crop, split 1; total {total / 60:.1f} min.",
        "",
        "| backbone | linear top-1 | linear top-5 | retrieval top-1 | top-5 | top-10 | mAP | pretrain (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lin, ret = r["linear"], r["retrieval"]
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
