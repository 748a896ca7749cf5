"""launch(): spawned gloo processes, seeding, clear errors."""
import os
import time

import pytest
import torch

from ascnet.config import get_cfg
from ascnet.engine.launch import LaunchError, launch
from ascnet.utils import distributed as du


def _all_reduce_job(cfg, out_dir):
    # Runs in each spawned process: all-reduce the rank, gather rows, record what was seen.
    import torch.distributed as dist

    rank, world = du.get_rank(), du.get_world_size()
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    mean = du.all_reduce_mean(torch.tensor([float(rank)]))
    # Ranks hold different row counts: rank r holds r + 1 rows filled with r.
    gathered = du.all_gather_cat(torch.full((rank + 1, 2), float(rank)))
    draw = torch.rand(1).item()  # seeded with RNG_SEED + rank
    import sys

    torch.save(
        {"sum": t.item(), "mean": mean.item(), "gathered": gathered, "world": world,
         "local_rank": du.get_local_rank(), "draw": draw, "plugin": "_launch_probe_plugin" in sys.modules},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )


def test_two_process_gloo_launch_all_reduces(tmp_path, monkeypatch):
    # A plugin listed in PLUGINS is imported in every spawned process too.
    (tmp_path / "_launch_probe_plugin.py").write_text("PROBE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = get_cfg()
    cfg.PLUGINS = ["_launch_probe_plugin"]
    cfg.NUM_GPUS = 0
    cfg.NUM_CPU_PROCESSES = 2
    cfg.TRAIN.BATCH_SIZE = 2
    cfg.RNG_SEED = 7
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    launch(cfg, _all_reduce_job, args=(str(tmp_path),))
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for r, d in enumerate(res):
        assert d["world"] == 2 and d["local_rank"] == r and d["plugin"]
        assert d["sum"] == 3.0  # 1 + 2
        assert d["mean"] == pytest.approx(0.5)
        expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
        assert torch.equal(d["gathered"], expected)
    # Each rank is seeded with RNG_SEED + rank.
    torch.manual_seed(7)
    assert res[0]["draw"] == pytest.approx(torch.rand(1).item())
    torch.manual_seed(8)
    assert res[1]["draw"] == pytest.approx(torch.rand(1).item())
    assert (tmp_path / "run" / "log.txt").exists()


def _stuck_peer_job(cfg):
    # Rank 1 hangs (alive, in no collective); rank 0's all_reduce must give up after DIST_TIMEOUT_S.
    if du.get_rank() == 1:
        time.sleep(120)
    torch.distributed.all_reduce(torch.ones(1))


def test_dist_timeout_bounds_a_collective_with_a_stuck_peer(tmp_path):
    from torch.multiprocessing import ProcessRaisedException

    cfg = get_cfg()
    cfg.NUM_GPUS, cfg.NUM_CPU_PROCESSES, cfg.TRAIN.BATCH_SIZE = 0, 2, 2
    cfg.DIST_TIMEOUT_S = 3
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    t0 = time.time()
    with pytest.raises(ProcessRaisedException) as info:
        launch(cfg, _stuck_peer_job)
    # Rank 0 failed on the configured timeout (gloo names it in ms), long before rank 1 woke up.
    assert info.value.error_index == 0 and "3000ms" in str(info.value), str(info.value)
    assert time.time() - t0 < 100
    cfg.DIST_TIMEOUT_S = 0
    with pytest.raises(LaunchError, match="DIST_TIMEOUT_S must be > 0"):
        launch(cfg, _stuck_peer_job)


def _single_job(cfg, box):
    box.append((du.get_world_size(), torch.rand(1).item()))


def test_single_process_runs_in_place_and_seeds(tmp_path):
    cfg = get_cfg()
    cfg.RNG_SEED = 3
    cfg.OUTPUT_DIR = str(tmp_path)
    box = []
    launch(cfg, _single_job, args=(box,))
    torch.manual_seed(3)
    assert box == [(1, torch.rand(1).item())]


def test_too_many_gpus_is_a_clear_error(tmp_path):
    cfg = get_cfg()
    cfg.NUM_GPUS = torch.cuda.device_count() + 1
    cfg.OUTPUT_DIR = str(tmp_path)
    with pytest.raises(LaunchError, match="NUM_GPUS"):
        launch(cfg, _single_job, args=([],))


def test_multi_machine_auto_url_needs_master(tmp_path, monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = get_cfg()
    cfg.NUM_SHARDS = 2
    cfg.OUTPUT_DIR = str(tmp_path)
    with pytest.raises(LaunchError, match="tcp://"):
        launch(cfg, _single_job, args=([],))


def test_distributed_helpers_without_process_group():
    t = torch.arange(6.0).view(3, 2)
    assert du.get_world_size() == 1 and du.get_rank() == 0 and du.is_main_process()
    assert du.all_gather_cat(t) is t
    assert torch.equal(du.all_reduce_mean(t), t)
    m = torch.nn.Linear(2, 2)
    assert du.unwrap(torch.nn.DataParallel(m)) is m
    du.synchronize()


def test_joins_a_torchrun_world_instead_of_spawning(tmp_path):
    # Under torchrun (RANK / WORLD_SIZE / MASTER_* set), launch() joins that world: the config
    # asks for one process, yet the job sees two ranks and all-reduces across them.
    import subprocess
    import sys
    import textwrap

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, torch
        sys.path.insert(0, {repo!r})
        from ascnet.config import get_cfg
        from ascnet.engine.launch import launch
        from ascnet.utils import distributed as du

        def job(cfg):
            import torch.distributed as dist
            t = torch.tensor([du.get_rank() + 1.0])
            dist.all_reduce(t)
            out = {{"sum": t.item(), "world": du.get_world_size(), "local": du.get_local_rank()}}
            torch.save(out, os.path.join({str(tmp_path)!r}, f"r{{du.get_rank()}}.pt"))

        cfg = get_cfg()
        cfg.TRAIN.BATCH_SIZE = 2
        cfg.OUTPUT_DIR = {str(tmp_path / "out")!r}
        launch(cfg, job)
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
                       capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for rank in range(2):
        d = torch.load(tmp_path / f"r{rank}.pt")
        assert d == {"sum": 3.0, "world": 2, "local": rank}


def _descendants(pid):
    """Pids of every living descendant of ``pid`` (from /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc (Linux)")
def test_ranks_end_when_the_launcher_is_killed(tmp_path, repo_root):
    # tools/run_net.py with 2 CPU processes, saving a checkpoint every iteration; SIGKILL the
    # launcher mid-training: no rank may survive it (10 s) nor write a checkpoint after it.
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    engine_tests = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, os.path.join(repo_root, "tools", "run_net.py"),
           "--cfg", os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml"),
           "PLUGINS", "['test_trainer']", "MODEL.META_ARCH", "_TinySSL", "TRAIN.DATASET", "_TinyClips", "AUG.DEVICE", "loader",
           "TRAIN.BATCH_SIZE", "4", "SOLVER.BASE_BATCH_SIZE", "4", "DATA_LOADER.NUM_WORKERS", "0",
           "SOLVER.MAX_EPOCH", "100000", "TRAIN.CHECKPOINT_ITERS", "1", "TENSORBOARD.ENABLE", "False", "TRAIN.MONITOR_PERIOD", "0",
           "NUM_GPUS", "0", "NUM_CPU_PROCESSES", "2", "OUTPUT_DIR", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([engine_tests, os.path.dirname(engine_tests), repo_root, os.environ.get("PYTHONPATH", "")]))
    console = open(tmp_path / "console.txt", "wb")  # like a terminal: the ranks print into it too
    # Started as a script starts `cmd &`: with SIGINT ignored. torch's spawn asks for a
    # SIGINT when the launcher dies, which such a rank (or one that catches KeyboardInterrupt)
    # never acts on.
    launcher = subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=console, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    ranks = []
    try:
        pointer = out / "checkpoints" / "last_checkpoint"
        deadline = time.time() + 240
        while time.time() < deadline and launcher.poll() is None:
            ckpts = [f for f in os.listdir(out / "checkpoints") if f.endswith(".pyth")] if pointer.exists() else []
            if len(ckpts) >= 2:
                break
            time.sleep(0.2)
        assert launcher.poll() is None, (tmp_path / "console.txt").read_text()[-3000:]
        ranks = _descendants(launcher.pid)
        assert len(ranks) >= 2, ranks
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        time.sleep(0.5)  # a write already inside os.replace may still land
        before = {f: os.stat(out / "checkpoints" / f).st_mtime_ns for f in os.listdir(out / "checkpoints")}
        time.sleep(9.5)
        left = [p for p in ranks if _alive(p)]
        assert not left, f"processes {left} outlived their launcher"
        after = {f: os.stat(out / "checkpoints" / f).st_mtime_ns for f in os.listdir(out / "checkpoints")}
        assert {f: t for f, t in after.items() if ".tmp-" not in f} == {f: t for f, t in before.items() if ".tmp-" not in f}
    finally:
        for p in ranks:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
        console.close()
