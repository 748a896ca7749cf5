#!/usr/bin/env python
"""GPU figures in one run (started by ``benchmarks/gpu_check.sh``; needs one CUDA device).

1. Step time and peak memory of the R3D-18 16x112 recipe (``configs/Kinetics/ASCNet_R3D18_16x112.yaml``)
   at batch 32 on one GPU, the real ``Trainer.run_step`` on fixed random batches, in fp32, bf16
   AMP and fp16 AMP;
2. whether ``cudnn.benchmark``, ``MODEL.CHANNELS_LAST`` (channels_last_3d) and ``MODEL.COMPILE``
   (torch.compile of the online and target backbones), alone and together, change the bf16
   step time, and the host synchronisations of one step (``HostSyncCounter``);
3. device augmentation throughput (``BatchAugment`` on uint8 clips at ``AUG.LOAD_SIZE``);
4. memory-bank search on the GPU: torch matmul + max, and faiss GPU when importable with GPUs;
5. a one-process NCCL process group: init time and one all-reduce.

Writes one JSON object to ``--out`` and prints it as its last line. Without CUDA it says so and
exits with status 3 before measuring anything.
"""
import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time

import torch

NO_CUDA_EXIT = 3


def _sync():
    torch.cuda.synchronize()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_times(amp: str, steps: int, batch: int, variant: str = "") -> dict:
    """Median step time (ms) and peak memory (GiB) of Trainer.run_step with fixed batches."""
    from ascnet.config import load_config
    from ascnet.engine.trainer import Trainer

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    opts = ["NUM_GPUS", "1", "TRAIN.BATCH_SIZE", str(batch), "OUTPUT_DIR", tempfile.mkdtemp(prefix="gpu_check_"),
            "AMP.ENABLE", str(amp != "fp32"), "LOG_PERIOD", "1000000", "TENSORBOARD.ENABLE", "False"]
    if amp != "fp32":
        opts += ["AMP.DTYPE", "bfloat16" if amp == "bf16" else "float16"]
    if "channels_last_3d" in variant:
        opts += ["MODEL.CHANNELS_LAST", "True"]
    if "compile" in variant:
        opts += ["MODEL.COMPILE", "True"]
    cfg = load_config(os.path.join(repo, "configs/Kinetics/ASCNet_R3D18_16x112.yaml"), opts)

    class Fixed(Trainer):
        def build_train_loader(self, cfg):
            s, t, c = len(cfg.DATA.SPEEDS), cfg.DATA.NUM_FRAMES, cfg.DATA.CROP_SIZE
            return [{"clips": torch.randn(batch, s, 3, t, c, c), "index": torch.arange(batch) + k * batch,
                     "label": torch.zeros(batch, dtype=torch.long)} for k in range(2)]

    torch.backends.cudnn.benchmark = variant == "cudnn_benchmark"
    tr = Fixed(cfg)
    batches = [tr.to_device(b) for b in tr.train_loader]  # run_step puts them channels-last
    from ascnet.utils.events import EventWriter
    from ascnet.utils.host_sync import HostSyncCounter

    tr.writer = EventWriter(cfg.OUTPUT_DIR, tensorboard=False, window=1)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for k in range(steps + 3):
        _sync()
        t = time.perf_counter()
        tr.run_step(batches[k % 2])
        tr.iter += 1
        _sync()
        if k >= 3:
            times.append(1000 * (time.perf_counter() - t))
    with HostSyncCounter() as syncs:  # one more step, not logged: what still waits for the GPU
        tr.run_step(batches[0])
        tr.iter += 1
    tr.writer.close()
    out = {"step_ms": round(statistics.median(times), 2), "samples_per_s": round(batch / statistics.median(times) * 1000, 1),
           "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "host_syncs": dict(syncs.counts)}
    del tr, batches
    torch.cuda.empty_cache()
    return out


def augmentation(batch: int = 32) -> dict:
    from ascnet.config import get_cfg
    from ascnet.data.batch_augment import build_batch_augment, build_param_sampler, stack_params

    cfg = get_cfg()
    aug = build_batch_augment(cfg).cuda()
    sampler = build_param_sampler(cfg)
    n = batch * 2
    params = stack_params([sampler.draw(256, 340, s) for s in range(n)], (256, 340), (128, 128))
    clips = torch.randint(0, 256, (n, 3, 16, 128, 128), dtype=torch.uint8).pin_memory()
    with torch.no_grad():
        for _ in range(3):
            aug(clips.cuda(non_blocking=True), params)
        _sync()
        t = time.perf_counter()
        for _ in range(20):
            aug(clips.cuda(non_blocking=True), params)
        _sync()
    ms = 1000 * (time.perf_counter() - t) / 20
    return {"batch_ms": round(ms, 3), "samples_per_s": round(batch / ms * 1000, 1), "clips_per_sample": 2}


def bank_search() -> dict:
    out = {}
    bank = torch.nn.functional.normalize(torch.randn(32768, 256, device="cuda"), dim=1)
    for q in (64, 256, 1024):
        x = torch.nn.functional.normalize(torch.randn(q, 256, device="cuda"), dim=1)
        for _ in range(3):
            (x @ bank.T).max(dim=1)
        _sync()
        t = time.perf_counter()
        for _ in range(50):
            (x @ bank.T).max(dim=1)
        _sync()
        out[f"torch_q{q}_ms"] = round(1000 * (time.perf_counter() - t) / 50, 4)
    try:
        import faiss

        if faiss.get_num_gpus() > 0 and hasattr(faiss, "StandardGpuResources"):
            res = faiss.StandardGpuResources()
            index = faiss.GpuIndexFlatIP(res, 256)
            index.add(bank.cpu().numpy())
            for q in (64, 256, 1024):
                x = torch.nn.functional.normalize(torch.randn(q, 256), dim=1).numpy()
                index.search(x, 1)
                t = time.perf_counter()
                for _ in range(50):
                    index.search(x, 1)
                out[f"faiss_gpu_q{q}_ms"] = round(1000 * (time.perf_counter() - t) / 50, 4)
        else:
            out["faiss_gpu"] = "faiss imports but has no GPU support or sees no GPU"
    except ImportError:
        out["faiss_gpu"] = "faiss not importable"
    return out


def nccl() -> dict:
    import torch.distributed as dist

    t = time.perf_counter()
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    x = torch.ones(1024, device="cuda")
    dist.all_reduce(x)
    _sync()
    out = {"init_and_allreduce_s": round(time.perf_counter() - t, 3), "ok": bool(x[0].item() == 1.0)}
    dist.destroy_process_group()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--budget-s", type=float, default=420, help="skip the remaining parts after this long")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing measured.", file=sys.stderr)
        return NO_CUDA_EXIT
    t0 = time.time()
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda}
    parts = [("nccl_1proc", nccl), ("augmentation", augmentation), ("bank_search", bank_search)]
    parts += [(f"step_{a}", lambda a=a: step_times(a, args.steps, args.batch)) for a in ("fp32", "bf16", "fp16")]
    parts += [(f"step_bf16_{v}", lambda v=v: step_times("bf16", args.steps, args.batch, v))
              for v in ("cudnn_benchmark", "channels_last_3d", "compile", "channels_last_3d+compile")]
    for name, fn in parts:
        if time.time() - t0 > args.budget_s:
            res[name] = "skipped: time budget spent"
            continue
        try:
            res[name] = fn()
        except Exception as e:  # one failing part must not lose the others' figures
            res[name] = f"failed: {type(e).__name__}: {e}"[:500]
        print(f"{name}: {res[name]}", flush=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
    res["wall_s"] = round(time.time() - t0, 1)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
