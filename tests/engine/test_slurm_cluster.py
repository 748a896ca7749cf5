"""ascnet jobs on a real (single-node) SLURM cluster: 2 tasks, preemption, administrator requeue.

Needs a cluster that answers ``sinfo``; CI starts one with ``bash tests/slurm/start_slurm.sh up``
(and stops it with ``down``). Without one, every test here is skipped.

Each test uses fresh folders (job ids restart at 1 on a fresh cluster). Preemption is simulated
with ``scancel --signal=USR2`` (what SLURM sends before a time limit or on preemption) and a
``--timeout-min`` of 11 or more, so submitit counts it as a preemption, not a time-out.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("submitit")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_DIR = os.path.join(REPO, "tests", "slurm")
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


pytestmark = pytest.mark.skipif(
    not _cluster_answers(),
    reason="no SLURM cluster answers (sinfo failed or no usable node); start one with "
    "`bash tests/slurm/start_slurm.sh up`",
)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO, TOY_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _submit(out_dir, opts, timeout_min=11, extra_env=None):
    """Submit through the public entry point; return (job id, job folder)."""
    script = (
        "import argparse, sys\n"
        "from ascnet.config.config import load_config\n"
        "from ascnet.engine.slurm import add_slurm_args, submit\n"
        "p = add_slurm_args(argparse.ArgumentParser()); p.add_argument('--opts', nargs='*', default=[])\n"
        "a = p.parse_args(sys.argv[1:]); submit(a, load_config(None, a.opts))\n"
    )
    argv = ["--slurm", "--nodes", "1", "--tasks-per-node", "2", "--cpus-per-task", "1",
            "--timeout-min", str(timeout_min), "--signal-delay-s", "30", "--job-name", "ascnet-test",
            "--opts", "OUTPUT_DIR", str(out_dir)] + list(opts)
    env = _env()
    env.update(extra_env or {})
    res = subprocess.run([sys.executable, "-c", script] + argv, capture_output=True, text=True, timeout=120,
                         cwd=REPO, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    job_id = re.search(r"Submitted SLURM job (\d+)", res.stdout).group(1)
    folder = re.search(r"job folder: (\S+)", res.stdout).group(1)
    return job_id, folder


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


def _toy_runs(out_dir):
    path = os.path.join(out_dir, "toy_runs.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


TOY_OPTS = ["PLUGINS", "['slurm_toy_task']", "TASK", "slurm_toy", "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "2",
            "RETRIEVAL.BATCH_SIZE", "2"]


def test_toy_preemption_checkpoints_requeues_and_resumes(tmp_path):
    out = tmp_path / "out"
    max_iters = 60
    job_id, folder = _submit(out, TOY_OPTS + ["TRAIN.MAX_ITERS", str(max_iters)], extra_env={"TOY_SLEEP_S": "0.2"})
    _wait(lambda: len(_toy_runs(out)) >= 5, 120, "5 iterations", lambda: _logs(folder, job_id))
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    logs = _wait_done(job_id, folder)
    assert "this job is preempted" in logs, logs
    saved = int(re.search(r"SIGUSR2: saved a checkpoint at iteration (\d+)", logs).group(1))
    assert 5 <= saved < max_iters
    assert f"resumed from iteration {saved}" in logs
    assert "(restart 1)" in logs
    assert logs.count("process group ready: world size 2, ranks [0, 1]") == 4, logs  # 2 ranks x 2 runs
    runs = _toy_runs(out)
    assert [r["iter"] for r in runs if r["resumed_from"] == saved] == list(range(saved + 1, max_iters + 1))


def test_toy_admin_requeue_resumes_from_periodic_checkpoint(tmp_path):
    out = tmp_path / "out"
    max_iters = 60
    job_id, folder = _submit(out, TOY_OPTS + ["TRAIN.MAX_ITERS", str(max_iters), "TRAIN.CHECKPOINT_ITERS", "4"],
                             extra_env={"TOY_SLEEP_S": "0.2"})
    _wait(lambda: len(_toy_runs(out)) >= 6, 120, "6 iterations", lambda: _logs(folder, job_id))
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    logs = _wait_done(job_id, folder)
    resumed = int(re.search(r"resumed from iteration (\d+)", logs).group(1))
    assert resumed > 0 and resumed % 4 == 0, logs
    assert "SIGUSR2" not in logs  # nothing was saved on the way out: the periodic checkpoint served
