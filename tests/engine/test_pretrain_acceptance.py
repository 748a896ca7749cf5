"""ASCNet pretraining through tools/run_net.py on the generated dataset (tiny sizes):

* the shortened quickstart trains and its loss goes down;
* exact resume: a run SIGKILLed after a mid-epoch checkpoint, then resumed with
  TRAIN.AUTO_RESUME, logs the same losses as an uninterrupted run at every iteration and ends
  with the same weights (DETERMINISTIC True, NUM_WORKERS 0 and 1);
* a NaN loss stops the run with a clear message and the previous checkpoint stays loadable.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ascnet.config import load_config
from ascnet.data.synthetic import SyntheticSpec, ensure_synthetic_dataset
from ascnet.utils.checkpoint import Checkpointer
from metrics_file import read_metrics
from tiny_runs import TINY_PRETRAIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join("configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
MAX_ITERS = 10

TINY = TINY_PRETRAIN + ["TRAIN.MAX_ITERS", str(MAX_ITERS)]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    cfg = load_config(os.path.join(REPO, QUICKSTART), TINY + ["DATA.PATH_TO_DATA_DIR", root])
    ensure_synthetic_dataset(root, SyntheticSpec.from_cfg(cfg), progress=False)
    return root


def _cmd(repo_root, out, data_root, *extra):
    return [sys.executable, os.path.join(repo_root, "tools", "run_net.py"), "--cfg", QUICKSTART, *TINY,
            "OUTPUT_DIR", str(out), "DATA.PATH_TO_DATA_DIR", data_root, *extra]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def _final_model(out):
    ck = Checkpointer(str(out), torch.nn.Identity())
    return Checkpointer.read(ck.get_checkpoint_file())


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("reference")
    r = subprocess.run(_cmd(REPO, out, data_root), capture_output=True, text=True, timeout=300,
                       cwd=REPO, env=_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r


def test_shortened_quickstart_trains_and_loss_goes_down(reference_run):
    out, r = reference_run
    m = read_metrics(out)
    assert sorted(m) == list(range(1, MAX_ITERS + 1))
    first = sum(m[i]["loss"] for i in (1, 2, 3)) / 3
    last = sum(m[i]["loss"] for i in (MAX_ITERS - 2, MAX_ITERS - 1, MAX_ITERS)) / 3
    assert last < 0.9 * first, (first, last)
    for key in ("loss_acp", "loss_scp", "lr", "ema_tau", "bank_fill", "pos_sim", "time", "data_time", "eta_seconds"):
        assert key in m[MAX_ITERS], key
    assert "Training finished at iteration" in r.stdout
    assert os.path.exists(os.path.join(out, "config.yaml")) and os.path.exists(os.path.join(out, "log.txt"))


@pytest.mark.parametrize("workers", [0, 1])
def test_exact_resume_after_sigkill(reference_run, tmp_path, repo_root, data_root, workers):
    # The reference ran with NUM_WORKERS 0: samples are seeded per sample, so a run with a
    # worker process, killed and resumed, must match it too.
    ref_out, _ = reference_run
    out = tmp_path / "run"
    pointer = out / "checkpoints" / "last_checkpoint"
    # No race with a fast run: a plugin parks the run inside iteration 7 (after the checkpoint
    # of iteration 5, mid-epoch) until the SIGKILL comes; the resumed run does not load it.
    (tmp_path / "park_at_step7.py").write_text(
        "import time\n"
        "from ascnet.modeling.meta_arch.ascnet import ASCNet\n"
        "_forward = ASCNet.forward\n"
        "def forward(self, batch):\n"
        "    if self.training and int(self.iteration) == 6:\n"
        "        time.sleep(3600)\n"
        "    return _forward(self, batch)\n"
        "ASCNet.forward = forward\n"
    )
    env = dict(_env(), PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = _cmd(repo_root, out, data_root, "TRAIN.CHECKPOINT_ITERS", "5", "TRAIN.CHECKPOINT_PERIOD", "100",
               "DATA_LOADER.NUM_WORKERS", str(workers))
    proc = subprocess.Popen(cmd + ["PLUGINS", "['park_at_step7']"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=repo_root, env=env)
    try:
        deadline = time.time() + 240
        while not pointer.exists():
            assert proc.poll() is None, "the run ended before writing a checkpoint: " + proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        time.sleep(0.5)  # let it run into iteration 6 and 7: the kill loses work, as a real one does
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = Checkpointer.read(Checkpointer(str(out), torch.nn.Identity()).get_checkpoint_file())
    assert killed_at["iteration"] == 5 and killed_at["epoch"] == 2 and killed_at["epoch_iter"] == 1  # mid-epoch

    r = subprocess.run(cmd + ["TRAIN.AUTO_RESUME", "True"], capture_output=True, text=True, timeout=300,
                       cwd=repo_root, env=_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Resumed from" in r.stdout
    ref, got = read_metrics(ref_out), read_metrics(out)
    assert sorted(got) == sorted(ref)
    for it in range(1, MAX_ITERS + 1):  # before the kill, and replayed after the resume
        for key in ("loss", "loss_acp", "loss_scp", "lr", "ema_tau", "bank_fill", "pos_sim"):
            assert got[it][key] == ref[it][key], (it, key, got[it][key], ref[it][key])
    ref_model, got_model = _final_model(ref_out)["model"], _final_model(out)["model"]
    assert ref_model.keys() == got_model.keys()
    for k in ref_model:
        assert torch.equal(ref_model[k], got_model[k]), k


def test_nan_loss_stops_and_previous_checkpoint_stays_loadable(tmp_path, repo_root, data_root):
    # A plugin (imported through PLUGINS) makes ASCNet's SCP loss NaN at its 5th step.
    plugin = tmp_path / "nan_at_step5.py"
    plugin.write_text(
        "from ascnet.modeling.meta_arch.ascnet import ASCNet\n"
        "_forward = ASCNet.forward\n"
        "def forward(self, batch):\n"
        "    out = _forward(self, batch)\n"
        "    if self.training and int(self.iteration) == 4:\n"
        "        out['loss_scp'] = out['loss_scp'] * float('nan')\n"
        "    return out\n"
        "ASCNet.forward = forward\n"
    )
    out = tmp_path / "run"
    env = dict(_env(), PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = _cmd(repo_root, out, data_root, "TRAIN.CHECKPOINT_ITERS", "2", "TRAIN.CHECKPOINT_PERIOD", "100",
               "PLUGINS", "['nan_at_step5']")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=repo_root, env=env)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "Training stopped: Non-finite loss" in r.stderr
    assert "Non-finite loss at iteration 5" in r.stdout + r.stderr and "loss_scp=nan" in r.stdout + r.stderr
    ck = Checkpointer(str(out), torch.nn.Identity())
    assert ck.get_checkpoint_file().endswith("checkpoint_iter_0000004.pyth")
    assert sorted(os.listdir(out / "checkpoints")) == [
        "checkpoint_iter_0000002.pyth", "checkpoint_iter_0000004.pyth", "last_checkpoint"]
    data = Checkpointer.read(ck.get_checkpoint_file())
    assert data["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in data["model"].values() if v.is_floating_point())
    assert "Non-finite loss at iteration 5" in (out / "log.txt").read_text()


def test_two_cpu_processes_with_ddp(tmp_path, repo_root, data_root):
    # The distributed path on CPU: 2 gloo processes, ASCNet's online network under DDP, the
    # global batch all-gathered into the banks, stats averaged over ranks, rank 0 writes.
    out = tmp_path / "run"
    cmd = _cmd(repo_root, out, data_root, "NUM_CPU_PROCESSES", "2", "TRAIN.MAX_ITERS", "4")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=repo_root, env=_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = read_metrics(out)
    assert sorted(m) == [1, 2, 3, 4]
    assert m[4]["bank_fill"] == 16.0  # 4 steps x global batch 4, all-gathered on every rank
    data = _final_model(out)
    assert data["iteration"] == 4
    assert not any(".module." in k for k in data["model"])  # DDP-free names
    assert sorted(os.listdir(out)) == ["checkpoints", "config.yaml", "log.txt", "log.txt.rank1", "metrics.json"]
    assert "json_stats" not in (out / "log.txt.rank1").read_text()  # other ranks log warnings only
