#!/usr/bin/env python
"""The paper's ablation table on the generated dataset (run by hand; docs/benchmarks.md).

Rows (the same small 3D R18, the same data and budget):

* ``ascnet``: ACP + SCP, SCP positives by appearance retrieval (the method);
* ``acp_only``: ``ASCNET.SCP_WEIGHT 0``;
* ``scp_only``: ``ASCNET.ACP_WEIGHT 0``;
* ``scp_random_positives``: ACP + SCP with ``ASCNET.POSITIVE_SAMPLER random_same_speed``;
* ``rho_byol``: rho-BYOL (rho = 2) from projects/RhoBYOL with the same encoder, heads and teacher;
* ``random_init``: no pretraining;
* ``supervised``: the backbone trained with labels from random init (all layers), the
  reference of what the data allows: configs/Synthetic/finetune_quickstart.yaml (SGD), and on
  the motion benchmark configs/Synthetic/motion_benchmark_supervised.yaml (AdamW: SGD from
  random init stays at chance there; docs/benchmarks.md, "Motion benchmark").

Columns: linear protocol top-1 in both modes (``LINEAR.MODE sgd``: the paper's SGD over decoded
clips; ``cached``: L-BFGS on cached features), kNN top-1 (k = 20, 200) and retrieval top-1 and
mAP (configs/Synthetic/retrieval_quickstart.yaml: test -> train, 10 clips); each the mean and
the standard deviation over ``--seeds`` (``RNG_SEED`` of pretraining and evaluation; the videos
are the same for every seed). The data and the recipe are the quickstart's
(configs/Synthetic/ASCNet_R3D18_quickstart.yaml: per-video appearance, three videos in four with
their class's typical scene); the budgets (and optionally the dataset size) are arguments, so
the same command runs the small version on a shared CPU and a larger one elsewhere. Each row is
saved as it ends (``<out>/seed<k>/<row>/row.json``) and reused by a rerun, so an interrupted
benchmark goes on where it stopped; ``--jobs`` runs that many seeds at once (one torch thread
each). Prints a markdown table and writes ``<out>/ssl_gain.json``.

``--preset direction_speed`` runs the table on the motion benchmark instead
(configs/Synthetic/motion_benchmark.yaml's data: 8 classes = 4 directions x 2 speeds, appearance
independent of the class, flips off) and adds the motion diagnostics of each pretrained backbone
(docs/evaluation.md, "Motion diagnostics"): the static-bias drops of retrieval top-1 (query
frames shuffled / one frame repeated), the speed probe of the backbone and of ASCNet's motion
projection, and the per-factor top-1 (direction, speed).

    python benchmarks/ssl_gain.py --out output/ssl_gain --seeds 0 1 2 --jobs 3
    python benchmarks/ssl_gain.py --preset direction_speed --out output/ssl_gain_motion --seeds 0 1 2 --jobs 2
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from ascnet.utils.io import atomic_write_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(REPO, "configs", "Synthetic")
PRETRAIN = os.path.join(CFG, "ASCNet_R3D18_quickstart.yaml")
sys.path.insert(0, os.path.join(REPO, "projects", "RhoBYOL"))  # the rho_byol plugin, installed or not

CONDITIONS = {
    "ascnet": ["ASCNET.POSITIVE_SAMPLER", "appearance_retrieval"],
    "acp_only": ["ASCNET.SCP_WEIGHT", "0.0"],
    "scp_only": ["ASCNET.ACP_WEIGHT", "0.0"],
    "scp_random_positives": ["ASCNET.POSITIVE_SAMPLER", "random_same_speed"],
    "rho_byol": ["PLUGINS", "['rho_byol']", "MODEL.META_ARCH", "RhoBYOL", "DATA.SPEEDS", "[1, 1]"],
    "random_init": None,
    "supervised": "supervised",
}
COLUMNS = ("linear_sgd", "linear_cached", "knn20_top1", "knn200_top1", "retrieval_top1", "mAP")
# The motion diagnostics of the retrieval run (RETRIEVAL.DIAGNOSTICS), with --preset direction_speed.
DIAGNOSTIC_COLUMNS = ("shuffle_drop_top1", "repeat_drop_top1", "speed_probe_top1", "motion_projection_speed_probe_top1",
                      "factor_direction_top1", "factor_speed_top1")
# The data of each --preset (the motion benchmark's: configs/Synthetic/motion_benchmark.yaml).
PRESET_OPTS = {
    "quickstart": [],
    "direction_speed": ["DATA.SYNTHETIC.PRESET", "direction_speed", "DATA.SYNTHETIC.CLASS_SCENE_PROB", "0.0",
                        "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "150", "AUG.FLIP_PROB", "0.0"],
}
# The supervised reference of each --preset: a recipe under which supervision learns that data.
SUPERVISED_CFG = {
    "quickstart": os.path.join(CFG, "finetune_quickstart.yaml"),
    "direction_speed": os.path.join(CFG, "motion_benchmark_supervised.yaml"),
}


def _run(cfg_path, opts):
    from ascnet.engine.launch import launch
    from ascnet.engine.plugins import load_config
    from ascnet.engine.tasks import get_task

    cfg = load_config(cfg_path, opts)
    t = time.process_time()
    launch(cfg, get_task(cfg.TASK))
    return cfg, time.process_time() - t


def _test_top1(out_dir, split_id=1):
    with open(os.path.join(out_dir, f"test_results_split{split_id}.json")) as f:
        return json.load(f)["results"]["top1"]


def run_condition(name, extra, seed, args, data_opts):
    """One row for one seed (read back when an earlier run saved it): pretraining (unless random
    init / supervised), then every evaluation."""
    base = os.path.join(args.out, f"seed{seed}", name)
    saved = os.path.join(base, "row.json")
    if os.path.isfile(saved):
        with open(saved) as f:
            return json.load(f)
    row = _compute_row(name, extra, seed, args, data_opts, base)
    atomic_write_bytes(saved, json.dumps(row))
    return row


def _compute_row(name, extra, seed, args, data_opts, base):
    common = data_opts + ["RNG_SEED", str(seed), "TENSORBOARD.ENABLE", "False", "TRAIN.AUTO_RESUME", "False"]
    row = {}
    if extra == "supervised":
        epochs = ["FINETUNE.MAX_EPOCH", str(args.supervised_epochs)] if args.supervised_epochs else []
        _, row["cpu_s"] = _run(SUPERVISED_CFG[args.preset], common + epochs + [
            "OUTPUT_DIR", base, "TRAIN.CHECKPOINT_FILE_PATH", "", "TEST.NUM_SPATIAL_CROPS", "1"])
        row["finetune"] = _test_top1(base)
        return row
    ckpt = ""
    if extra is not None:
        ckpt = os.path.join(base, "pretrain")
        _, row["pretrain_cpu_s"] = _run(PRETRAIN, common + extra + list(args.pretrain_opts) + [
            "OUTPUT_DIR", ckpt, "SOLVER.MAX_EPOCH", str(args.pretrain_epochs), "TRAIN.MONITOR_PERIOD", "0"])
    if args.linear_epochs > 0:
        lin = os.path.join(base, "linear_sgd")
        _run(os.path.join(CFG, "linear_quickstart.yaml"), common + [
            "OUTPUT_DIR", lin, "TRAIN.CHECKPOINT_FILE_PATH", ckpt, "LINEAR.MAX_EPOCH", str(args.linear_epochs),
            "TEST.NUM_SPATIAL_CROPS", "1"])
        row["linear_sgd"] = _test_top1(lin)
    lin_c = os.path.join(base, "linear_cached")
    _run(os.path.join(CFG, "linear_quickstart.yaml"), common + [
        "OUTPUT_DIR", lin_c, "TRAIN.CHECKPOINT_FILE_PATH", ckpt, "LINEAR.MODE", "cached",
        "LINEAR.CACHED_TRAIN_CROPS", "1", "TEST.NUM_SPATIAL_CROPS", "1"])
    row["linear_cached"] = _test_top1(lin_c)
    ret = os.path.join(base, "retrieval")
    diag = ["RETRIEVAL.DIAGNOSTICS", "['static_bias', 'speed']", "MODEL.PROJECTION.HIDDEN_DIM", "512",
            "MODEL.PROJECTION.OUT_DIM", "128"] if args.preset != "quickstart" else []
    _run(os.path.join(CFG, "retrieval_quickstart.yaml"), common + diag + [
        "OUTPUT_DIR", ret, "RETRIEVAL.CHECKPOINT_FILE_PATH", ckpt, "RETRIEVAL.USE_CACHE", "False"])
    (js,) = [x for x in os.listdir(ret) if x.endswith(".json")]
    with open(os.path.join(ret, js)) as f:
        blob = json.load(f)
    r = blob["results"]
    row.update(knn20_top1=r["knn20_top1"], knn200_top1=r["knn200_top1"], retrieval_top1=r["top1"], mAP=r["mAP"])
    row.update({k: v for k, v in blob.get("diagnostics", {}).items() if k in DIAGNOSTIC_COLUMNS})
    return row


def _cell(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "output", "ssl_gain"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="*", default=[], help=f"subset of {list(CONDITIONS)}")
    p.add_argument("--preset", choices=sorted(PRESET_OPTS), default="quickstart",
                   help="the data: the quickstart's, or the motion benchmark (direction_speed) with the diagnostics")
    p.add_argument("--videos-per-class", type=int, default=0, help="0: the preset's")
    p.add_argument("--size", type=int, default=0, help="frame size of the generated videos (crops = size); 0: the quickstart's")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--pretrain-opts", nargs="*", default=[], metavar="KEY VALUE",
                   help="config overrides for every pretraining run, e.g. SOLVER.OPTIMIZING_METHOD adamw SOLVER.BASE_LR 0.004")
    p.add_argument("--linear-epochs", type=int, default=100, help="epochs of the SGD linear protocol; 0 leaves that column out")
    p.add_argument("--supervised-epochs", type=int, default=0,
                   help="epochs of the supervised row; 0: its config's (30 quickstart, 15 direction_speed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (1: steady on a shared machine)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process")
    args = p.parse_args(argv)
    if len(args.pretrain_opts) % 2:
        p.error(f"--pretrain-opts takes KEY VALUE pairs, got {len(args.pretrain_opts)} words: {args.pretrain_opts}")
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    if args.jobs > 1 and len(args.seeds) > 1:
        _run_seeds_in_parallel(args, argv if argv is not None else sys.argv[1:])
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    data_opts = ["LOG_PERIOD", "50", "DATA.PATH_TO_DATA_DIR", os.path.join(os.path.abspath(args.out), "synthetic")]
    data_opts += PRESET_OPTS[args.preset]
    if args.videos_per_class:
        data_opts += ["DATA.SYNTHETIC.VIDEOS_PER_CLASS", str(args.videos_per_class)]
    if args.size:
        data_opts += ["DATA.SYNTHETIC.SIZE", str(args.size), "DATA.CROP_SIZE", str(args.size),
                      "DATA.TEST_CROP_SIZE", str(args.size), "DATA.TEST_SHORT_SIDE", str(args.size)]
    conditions = {k: v for k, v in CONDITIONS.items() if not args.only or k in args.only}
    results = {name: [] for name in conditions}
    for seed in args.seeds:
        for name, extra in conditions.items():
            row = run_condition(name, extra, seed, args, data_opts)
            results[name].append(row)
            print("ROW", seed, name, json.dumps(row), flush=True)
            partial = {"results": results, "args": vars(args)}
            atomic_write_bytes(os.path.join(args.out, "ssl_gain.json"), json.dumps(partial, indent=2))
    lines = [
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared), {args.jobs} job(s) of {args.threads} torch thread(s); "
        f"seeds {args.seeds}; the {args.preset} data (videos per class {args.videos_per_class or 'as configured'}, "
        f"size {args.size or 'as configured'}); pretraining "
        f"{args.pretrain_epochs} epochs{' with ' + ' '.join(args.pretrain_opts) if args.pretrain_opts else ''}, linear (sgd) {args.linear_epochs} epochs, supervised "
        f"{os.path.basename(SUPERVISED_CFG[args.preset])}{f' for {args.supervised_epochs} epochs' if args.supervised_epochs else ''}; wall {(time.time() - t0) / 60:.1f} min. Mean ± std over seeds (chance 12.5).",
        "",
        "| row | linear sgd | linear cached | kNN20 | kNN200 | retrieval top-1 | mAP |",
        "|---|---|---|---|---|---|---|",
    ]
    diag_lines = ["", "| row | shuffle drop | repeat drop | speed probe (backbone) | speed probe (g_m) | direction top-1 | speed top-1 |",
                  "|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        if name == "supervised":
            lines.append(f"| supervised (all layers, labels; test top-1) | {_cell([r['finetune'] for r in rows])} | - | - | - | - | - |")
            continue
        lines.append("| " + name + " | " + " | ".join(_cell([r[c] for r in rows if c in r]) for c in COLUMNS) + " |")
        diag_lines.append("| " + name + " | " + " | ".join(_cell([r[c] for r in rows if c in r]) for c in DIAGNOSTIC_COLUMNS) + " |")
    table = "\n".join(lines + (diag_lines if args.preset != "quickstart" else []))
    print(table)
    atomic_write_bytes(
        os.path.join(args.out, "ssl_gain.json"), json.dumps({"results": results, "table": table, "args": vars(args)}, indent=2)
    )


def _run_seeds_in_parallel(args, argv):
    """Run the seeds ``args.jobs`` at a time, each in a child process of this script; their rows
    land in ``<out>/seed<k>/`` and the caller then reads them back to build the table."""
    pending, running = list(args.seeds), []
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            log = open(os.path.join(args.out, f"seed{seed}.log"), "a")
            # The last --seeds / --jobs on a command line wins (argparse), so the child keeps every
            # other option as given.
            cmd = [sys.executable, os.path.abspath(__file__), *argv, "--seeds", str(seed), "--jobs", "1"]
            running.append((seed, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(5)
        for item in list(running):
            seed, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode:
                    raise SystemExit(f"ssl_gain: seed {seed} failed (exit {proc.returncode}); see {log.name}")


if __name__ == "__main__":
    main()
