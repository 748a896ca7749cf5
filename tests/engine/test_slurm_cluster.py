"""ascnet jobs on a real SLURM cluster: 2 tasks on one node (preemption, administrator requeue)
and 1 task on each of two nodes (``*two_node*``: same weights as 2 local processes, preemption,
a killed rank).

Needs a cluster that answers ``sinfo``; CI starts a two-node one with
``SLURM_NODES=2 bash tests/slurm/start_slurm.sh up`` (and stops it with ``down``). Without a
cluster, every test here is skipped; on a one-node cluster, the two-node tests are (except under
``ASCNET_REQUIRE_SLURM=1``, where they fail).

Each test uses fresh folders (job ids restart at 1 on a fresh cluster). Preemption is simulated
with ``scancel --signal=USR2`` (what SLURM sends before a time limit or on preemption) and a
``--timeout-min`` of 30: submitit counts a USR2 as a time-out, not a preemption, once a run has
lasted min(80% of the limit, limit - 10 min), which is only 1 minute with an 11-minute limit.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated") for s in res.stdout.split())


_NO_CLUSTER = (
    "no SLURM cluster answers (sinfo failed or no usable node); start one with "
    "`bash tests/slurm/start_slurm.sh up`"
)
_HAVE_CLUSTER = _cluster_answers()
if os.environ.get("ASCNET_REQUIRE_SLURM") == "1" and not _HAVE_CLUSTER:
    # .ci/run sets this once it has started the cluster: a cluster that came up but does not
    # answer is a failure there, not a skip.
    raise RuntimeError(f"ASCNET_REQUIRE_SLURM=1 but {_NO_CLUSTER}")
pytestmark = pytest.mark.skipif(not _HAVE_CLUSTER, reason=_NO_CLUSTER)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _job_field(job_id, field):
    res = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    m = re.search(rf"\b{field}=(\S+)", res.stdout)
    return m.group(1) if m else None


def _wait(predicate, timeout_s, what, logs=lambda: ""):
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}\n{logs()}")


def _logs(folder, job_id):
    text = []
    for rank in (0, 1):
        for ext in ("out", "err"):
            p = os.path.join(folder, f"{job_id}_{rank}_log.{ext}")
            if os.path.exists(p):
                with open(p) as f:
                    text.append(f"===== rank {rank} {ext}\n{f.read()}")
    return "\n".join(text)


def _wait_done(job_id, folder, timeout_s=240):
    _wait(lambda: _job_field(job_id, "JobState") in FINAL_STATES, timeout_s, f"job {job_id} to end",
          lambda: _logs(folder, job_id))
    state = _job_field(job_id, "JobState")
    assert state == "COMPLETED", f"job {job_id} ended {state}\n{_logs(folder, job_id)}"
    return _logs(folder, job_id)


# --------------------------------------------------------------------------------------------
# Real pretraining through tools/run_net.py --slurm
# --------------------------------------------------------------------------------------------
CFG = os.path.join(REPO, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
# 2 classes x 8 generated videos -> 2 iterations per epoch at a global batch of 4 (2 per rank).
EPOCHS = 30
MAX_ITER = 2 * EPOCHS


def _tiny_opts(data_dir):
    return [
        "DATA.PATH_TO_DATA_DIR", str(data_dir), "DATA.SYNTHETIC.AUTO_GENERATE", "False",
        "DATA.SYNTHETIC.NUM_CLASSES", "2", "DATA.SYNTHETIC.VIDEOS_PER_CLASS", "8",
        "DATA.SYNTHETIC.NUM_FRAMES", "24", "DATA.SYNTHETIC.SIZE", "32",
        "DATA.NUM_FRAMES", "8", "DATA.CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
        "MODEL.BACKBONE.WIDTHS", "[8,16,16,32]", "MODEL.BACKBONE.STEM_WIDTH", "8",
        "MODEL.PROJECTION.HIDDEN_DIM", "32", "MODEL.PROJECTION.OUT_DIM", "16", "MODEL.PREDICTOR.HIDDEN_DIM", "32",
        "MEMORY_BANK.SIZE", "16", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "2", "RETRIEVAL.BATCH_SIZE", "2",
        "DATA_LOADER.NUM_WORKERS", "0", "DETERMINISTIC", "True", "TENSORBOARD.ENABLE", "False",
        "SOLVER.MAX_EPOCH", str(EPOCHS), "TRAIN.CHECKPOINT_PERIOD", "1000", "LOG_PERIOD", "1",
        "NUM_CPU_PROCESSES", "2", "TRAIN.MONITOR_PERIOD", "0",
    ]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    res = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "make_synthetic_dataset.py"), "--cfg", CFG]
        + _tiny_opts(out), capture_output=True, text=True, timeout=300, cwd=REPO, env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def _run_net_submit(out_dir, data_dir, *extra):
    argv = [sys.executable, os.path.join(REPO, "tools", "run_net.py"), "--cfg", CFG, "--slurm", "--nodes", "1",
            "--tasks-per-node", "2", "--cpus-per-task", "1", "--timeout-min", "30", "--signal-delay-s", "30",
            "--job-name", "ascnet-test"] + _tiny_opts(data_dir) + ["OUTPUT_DIR", str(out_dir)] + list(extra)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    job_id = re.search(r"Submitted SLURM job (\d+)", res.stdout).group(1)
    folder = re.search(r"job folder: (\S+)", res.stdout).group(1)
    assert "world size 2" in res.stdout, res.stdout
    return job_id, folder


def _iterations_done(out_dir):
    path = os.path.join(out_dir, "log.txt")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        its = re.findall(r'"iteration": (\d+)', f.read())
    return max(map(int, its)) if its else 0


def _final_model(out_dir):
    from ascnet.utils.checkpoint import Checkpointer

    with open(os.path.join(out_dir, "checkpoints", "last_checkpoint")) as f:
        name = f.read().strip()
    return Checkpointer.read(os.path.join(out_dir, "checkpoints", name))


def _run_log(out_dir):
    with open(os.path.join(out_dir, "log.txt")) as f:
        return f.read()


def test_pretrain_preempted_resumes_exactly(tmp_path, data_dir):
    out = tmp_path / "slurm_run"
    job_id, folder = _run_net_submit(out, data_dir)
    _wait(lambda: _iterations_done(out) >= 3, 180, "3 iterations", lambda: _logs(folder, job_id))
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    # The same run without interruption, on this machine (2 gloo processes), while SLURM requeues.
    ref_out = tmp_path / "reference"
    env = _env()
    ref = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "tools", "run_net.py"), "--cfg", CFG] + _tiny_opts(data_dir)
        + ["OUTPUT_DIR", str(ref_out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
    logs = _wait_done(job_id, folder)
    ref_log, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_log

    # Both ranks trained in one process group, before and after the requeue.
    for rank in (0, 1):
        assert logs.count(f"rank {rank} of world size 2") == 2, logs
    assert logs.count("process group ready: world size 2, ranks [0, 1]") == 4, logs
    # USR2 -> checkpoint() at an iteration boundary -> requeue -> resume from that iteration.
    assert "this job is preempted" in logs, logs
    saved = int(re.search(r"SIGUSR2: saved a checkpoint at iteration (\d+)", logs).group(1))
    assert 3 <= saved < MAX_ITER, logs
    assert "(restart 1)" in logs and "Requeued job" in logs, logs
    run_log = _run_log(out)
    assert re.search(rf"Resumed from \S+: iteration {saved}\b", run_log), run_log
    # Final weights (and every other model buffer, e.g. the memory banks) equal the reference.
    got, want = _final_model(out), _final_model(ref_out)
    assert got["iteration"] == want["iteration"] == MAX_ITER
    assert got["model"].keys() == want["model"].keys()
    different = [k for k in want["model"] if not torch.equal(got["model"][k], want["model"][k])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:5]}"


def test_admin_requeue_resumes_from_periodic_checkpoint(tmp_path, data_dir):
    out = tmp_path / "slurm_run"
    # Longer than the other test: the job keeps training until SIGKILL (KillWait after SIGTERM).
    epochs = 60
    job_id, folder = _run_net_submit(out, data_dir, "TRAIN.CHECKPOINT_ITERS", "3", "SOLVER.MAX_EPOCH", str(epochs))
    _wait(lambda: _iterations_done(out) >= 4, 180, "4 iterations", lambda: _logs(folder, job_id))
    # No signal to submitit: SIGTERM (ignored), then SIGKILL; the job restarts from its original pickle.
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    logs = _wait_done(job_id, folder)
    assert "(restart 1)" in logs and "SIGUSR2" not in logs, logs
    m = re.search(r"Resumed from \S+checkpoint_iter_(\d+)\S*: iteration (\d+)", _run_log(out))
    assert m, _run_log(out)
    resumed = int(m.group(2))
    # Resumed mid-run, from a periodic checkpoint (a multiple of 3), not from scratch.
    assert 3 <= resumed < 2 * epochs and resumed % 3 == 0, _run_log(out)
    assert _final_model(out)["iteration"] == 2 * epochs


# --------------------------------------------------------------------------------------------
# Two nodes (SLURM_NODES=2 bash tests/slurm/start_slurm.sh up): one task per node, gloo
# --------------------------------------------------------------------------------------------
SLURM_TESTS = os.path.join(REPO, "tests", "slurm")
# 2 classes x 12 generated videos: one epoch of 8 iterations at a global batch of 2 (1 per rank),
# so that a preemption anywhere but at the very end is mid-epoch.
TWO_NODE_VIDEOS = 12
TWO_NODE_EPOCHS = 1


def _nodes():
    res = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, timeout=30)
    return sorted({line.split()[0] for line in res.stdout.splitlines() if line.split()[1:2] != ["down"]})


def _two_node_env(step_sleep_s=0.0):
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([SLURM_TESTS, env["PYTHONPATH"]])  # the bank-dump plugin
    if step_sleep_s:
        # The job's first run sleeps after each iteration (bank_dump_task.py): a signal or a kill
        # sent after a few iterations surely lands mid-run, however fast the machine.
        env["ASCNET_TEST_STEP_SLEEP_S"] = str(step_sleep_s)
    return env


def _two_node_opts(data_dir, out_dir, *extra):
    opts = _tiny_opts(data_dir) + [
        "DATA.SYNTHETIC.VIDEOS_PER_CLASS", str(TWO_NODE_VIDEOS), "TRAIN.BATCH_SIZE", "2",
        "SOLVER.MAX_EPOCH", str(TWO_NODE_EPOCHS), "MEMORY_BANK.SIZE", "8",
        "PLUGINS", "['bank_dump_task']", "TASK", "pretrain_dump_banks", "DIST_TIMEOUT_S", "60",
        "OUTPUT_DIR", str(out_dir)]
    return opts + list(extra)


@pytest.fixture(scope="module")
def two_node_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic2") / "data"
    opts = _tiny_opts(out) + ["DATA.SYNTHETIC.VIDEOS_PER_CLASS", str(TWO_NODE_VIDEOS)]
    res = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "make_synthetic_dataset.py"), "--cfg", CFG] + opts,
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_env())
    assert res.returncode == 0, res.stdout + res.stderr
    return out


@pytest.fixture(scope="module")
def two_node_reference(tmp_path_factory, two_node_data):
    """The same run as 2 gloo processes on this machine (NUM_CPU_PROCESSES 2): the reference."""
    if len(_nodes()) < 2:
        why = (f"the two-node tests need a cluster of 2 nodes, sinfo lists {_nodes()}; start it with "
               "`SLURM_NODES=2 bash tests/slurm/start_slurm.sh up`")
        if os.environ.get("ASCNET_REQUIRE_SLURM") == "1":
            pytest.fail(why)  # CI starts two nodes: fewer is a failure there
        pytest.skip(why)
    out = tmp_path_factory.mktemp("two_node_reference") / "run"
    res = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "run_net.py"), "--cfg", CFG] + _two_node_opts(two_node_data, out),
        capture_output=True, text=True, timeout=400, cwd=REPO, env=_two_node_env())
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def _submit_two_node(out_dir, data_dir, *extra, step_sleep_s=0.0):
    argv = [sys.executable, os.path.join(REPO, "tools", "run_net.py"), "--cfg", CFG, "--slurm", "--nodes", "2",
            "--tasks-per-node", "1", "--cpus-per-task", "2", "--timeout-min", "30", "--signal-delay-s", "30",
            "--job-name", "ascnet-two-node"] + _two_node_opts(data_dir, out_dir, *extra)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO,
                         env=_two_node_env(step_sleep_s))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 node(s) x 1 task(s) (world size 2)" in res.stdout, res.stdout
    job_id = re.search(r"Submitted SLURM job (\d+)", res.stdout).group(1)
    folder = re.search(r"job folder: (\S+)", res.stdout).group(1)
    return job_id, folder


def _banks(out_dir, rank):
    return torch.load(os.path.join(out_dir, f"memory_banks_rank{rank}.pt"), weights_only=True)


def _assert_same_run(out, ref, logs):
    """Final weights (every parameter and buffer) equal the reference's; banks equal on both ranks."""
    got, want = _final_model(out), _final_model(ref)
    assert got["iteration"] == want["iteration"] > 0
    assert got["model"].keys() == want["model"].keys()
    different = [k for k in want["model"] if not torch.equal(got["model"][k], want["model"][k])]
    assert not different, f"{len(different)} of {len(want['model'])} tensors differ, e.g. {different[:5]}\n{logs}"
    b0, b1, ref0 = _banks(out, 0), _banks(out, 1), _banks(ref, 0)
    assert b0.keys() == b1.keys() == ref0.keys() and b0
    assert int(b0[next(k for k in b0 if k.endswith(".fill"))]) > 0  # the banks hold entries
    for k in b0:
        assert torch.equal(b0[k], b1[k]), f"memory bank {k} differs between rank 0 and rank 1"
        assert torch.equal(b0[k], ref0[k]), f"memory bank {k} differs from the 2-process run on one machine"


def _assert_two_nodes(logs, runs=1):
    assert logs.count("process group ready: world size 2, ranks [0, 1], nodes ['n1', 'n2']") == 2 * runs, logs
    assert "rendezvous 127.0.0.1:" in logs and "(first node n1)" in logs, logs  # n1 does not resolve: NodeAddr
    assert "process group timeout 60 s" in logs, logs


def test_two_node_pretrain_equals_two_local_processes(tmp_path, two_node_data, two_node_reference):
    out = tmp_path / "two_node"
    job_id, folder = _submit_two_node(out, two_node_data)
    # The submitted script gives --cpus-per-task to srun too (Slurm 22.05-23.02 do not pass it on).
    with open(os.path.join(folder, f"{job_id}_submission.sh")) as f:
        script = f.read()
    srun = [line for line in script.splitlines() if line.startswith("srun ")]
    assert len(srun) == 1 and " --cpus-per-task 2 " in srun[0] and "#SBATCH --cpus-per-task=2" in script, script
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=1" in script, script
    logs = _wait_done(job_id, folder)
    _assert_two_nodes(logs)
    _assert_same_run(out, two_node_reference, logs)


def test_two_node_preempted_resumes_exactly(tmp_path, two_node_data, two_node_reference):
    out = tmp_path / "two_node"
    job_id, folder = _submit_two_node(out, two_node_data, step_sleep_s=1.0)
    _wait(lambda: _iterations_done(out) >= 2, 240, "2 iterations", lambda: _logs(folder, job_id))
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    logs = _wait_done(job_id, folder, timeout_s=300)
    _assert_two_nodes(logs, runs=2)  # before and after the requeue, on both nodes
    assert "this job is preempted" in logs, logs
    saved = int(re.search(r"SIGUSR2: saved a checkpoint at iteration (\d+)", logs).group(1))
    assert "(restart 1)" in logs and "Requeued job" in logs, logs
    run_log = _run_log(out)
    m = re.search(rf"Resumed from \S+: iteration {saved}\b", run_log)
    assert m, run_log
    ckpt = _final_model(out)
    # Saved mid-epoch (one epoch is the whole run): the resume continued inside the epoch.
    assert 2 <= saved < ckpt["iteration"] and TWO_NODE_EPOCHS == 1, logs
    _assert_same_run(out, two_node_reference, logs)


def test_two_node_killed_rank_fails_in_bounded_time_and_resubmission_resumes(tmp_path, two_node_data,
                                                                            two_node_reference):
    out = tmp_path / "two_node"
    job_id, folder = _submit_two_node(out, two_node_data, "TRAIN.CHECKPOINT_ITERS", "2", step_sleep_s=1.0)
    _wait(lambda: _iterations_done(out) >= 3, 240, "3 iterations", lambda: _logs(folder, job_id))
    m = re.search(r"on node n2 \(host \S+, pid (\d+)\): rank 1 ", _logs(folder, job_id))
    assert m, _logs(folder, job_id)
    os.kill(int(m.group(1)), signal.SIGKILL)  # rank 1's process on node n2 dies
    t0 = time.time()
    # Rank 0 must not hang in a collective: the job ends within DIST_TIMEOUT_S (60 s) + margin.
    _wait(lambda: _job_field(job_id, "JobState") in FINAL_STATES, 150, f"job {job_id} to end after the kill",
          lambda: _logs(folder, job_id))
    elapsed = time.time() - t0
    state, logs = _job_field(job_id, "JobState"), _logs(folder, job_id)
    assert state == "FAILED", f"{state} after {elapsed:.0f} s\n{logs}"
    assert "[ascnet.slurm] rank 0 failed" in logs and "the process group broke" in logs, logs
    assert re.search(r"srun: error: n2: task 1: Killed", logs), logs
    last = _final_model(out)["iteration"]  # the last periodic checkpoint before the kill
    assert last >= 2 and last % 2 == 0, last
    # The same command again: it resumes from that checkpoint and ends like an uninterrupted run.
    job2, folder2 = _submit_two_node(out, two_node_data, "TRAIN.CHECKPOINT_ITERS", "2")
    logs2 = _wait_done(job2, folder2, timeout_s=300)
    _assert_two_nodes(logs2)
    assert re.search(rf"Resumed from \S+checkpoint_iter_0*{last}\S*: iteration {last}\b", _run_log(out)), _run_log(out)
    _assert_same_run(out, two_node_reference, logs2)
