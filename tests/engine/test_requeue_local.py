"""The requeue path of ASCNetJob on CPU, without SLURM: submitit's LocalExecutor.

Like submitit's own requeue tests: a short ``timeout_min`` makes the executor send SIGUSR2
``signal_delay_s`` seconds before the limit; rank 0 runs ``ASCNetJob.checkpoint()`` (the trainer
saves), the job is restarted from the new pickle and resumes from the saved iteration. Two
processes (gloo) check that the restarted job forms a fresh process group.

The trainer is a stand-in (``tests/slurm/slurm_toy_task.py``) following the trainer contract,
so this test covers the job/requeue mechanics only; ``tests/engine/test_slurm_cluster.py``
runs real pretraining on a real cluster.
"""
import json
import os
import sys

import pytest
import submitit  # a dependency: a missing install fails here instead of skipping
import torch

from ascnet.engine.plugins import load_config
from ascnet.engine.slurm import LOG_PREFIX, ASCNetJob, adapt_cfg_to_allocation

TOY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "slurm")


@pytest.fixture
def toy_plugin(monkeypatch):
    from ascnet.engine import tasks

    # The stand-in task is registered in a copy of the task table, restored after the test, so
    # other tests see the built-in tasks only.
    monkeypatch.setattr(tasks, "TASKS", dict(tasks.TASKS))
    tasks.register_task("slurm_toy", "slurm_toy_task:run_toy")
    monkeypatch.syspath_prepend(TOY_DIR)
    # The job's processes inherit the environment: they import the plugin from there too.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TOY_DIR] + sys.path))
    return "slurm_toy_task"


def _toy_cfg(out_dir, plugin, max_iters, **extra):
    opts = ["PLUGINS", f"['{plugin}']", "TASK", "slurm_toy", "OUTPUT_DIR", str(out_dir),
            "TRAIN.MAX_ITERS", str(max_iters), "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "2",
            "RETRIEVAL.BATCH_SIZE", "2", "TRAIN.AUTO_RESUME", "False"]
    for k, v in extra.items():
        opts += [k, str(v)]
    cfg = load_config(None, opts)
    return adapt_cfg_to_allocation(cfg, nodes=1, gpus_per_node=0, tasks_per_node=2)


def _read(path):
    with open(path) as f:
        return f.read()


def test_adapt_forces_auto_resume(tmp_path, toy_plugin):
    cfg = _toy_cfg(tmp_path, toy_plugin, 4)
    assert cfg.TRAIN.AUTO_RESUME is True
    assert (cfg.NUM_CPU_PROCESSES, cfg.NUM_SHARDS, cfg.NUM_GPUS) == (2, 1, 0)


def test_local_timeout_checkpoints_requeues_and_resumes(tmp_path, toy_plugin, monkeypatch):
    out = tmp_path / "out"
    max_iters = 400
    cfg = _toy_cfg(out, toy_plugin, max_iters)
    # Slow iterations before the requeue (0.2 s each: the signal surely lands mid-run), full
    # speed after it (400 tiny steps take about a second).
    monkeypatch.setenv("TOY_SLEEP_S", "0.2")
    executor = submitit.LocalExecutor(tmp_path / "job", max_num_timeout=1)
    # USR2 at 55 - 15 = 40 s after each start: start-up (imports, process group) takes 5 to 30 s
    # on 2 shared cores and must be over by then; the resumed run must finish within its own
    # 40 s, or it times out a second time and fails.
    executor.update_parameters(timeout_min=55 / 60, signal_delay_s=15, tasks_per_node=2, nodes=1)
    job = executor.submit(ASCNetJob(cfg))
    job.wait()
    logs = _read(job.paths.stdout) + _read(job.paths.stderr)
    assert job.state in ("FINISHED", "DONE", "COMPLETED"), logs
    job.results()  # raises if a task failed

    # checkpoint() ran on rank 0 and saved at an iteration boundary mid-run ...
    assert f"{LOG_PREFIX} SIGUSR2: saved a checkpoint at iteration" in logs, logs
    assert "Requeued job" in logs and "(0 remaining timeouts)" in logs, logs
    saved = int(logs.split("SIGUSR2: saved a checkpoint at iteration ")[1].split()[0])
    assert 0 < saved < max_iters
    # ... and the requeued job resumed from exactly that iteration and finished.
    runs = [json.loads(line) for line in _read(out / "toy_runs.jsonl").splitlines()]
    first = [r["iter"] for r in runs if r["resumed_from"] is None]
    second = [r["iter"] for r in runs if r["resumed_from"] is not None]
    assert {r["resumed_from"] for r in runs if r["resumed_from"] is not None} == {saved}
    assert first == list(range(1, len(first) + 1)) and first[-1] >= saved
    assert second == list(range(saved + 1, max_iters + 1))
    assert f"resumed from iteration {saved}" in logs
    # Both runs (before and after the requeue) formed one 2-process group.
    assert logs.count("process group ready: world size 2, ranks [0, 1]") == 2, logs
    assert torch.load(out / "toy_final.pt", weights_only=True)["weight"].shape == (1, 4)


def test_checkpoint_without_trainer_returns_fresh_job(tmp_path, toy_plugin, capsys):
    cfg = _toy_cfg(tmp_path, toy_plugin, 4)
    job = ASCNetJob(cfg)
    delayed = job.checkpoint()  # no trainer runs in this process
    assert isinstance(delayed.function, ASCNetJob) and delayed.function is not job
    assert delayed.function.cfg == cfg and delayed.args == () and delayed.kwargs == {}
    assert "no trainer is running" in capsys.readouterr().out
