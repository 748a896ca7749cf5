"""The rho-BYOL plugin project (projects/RhoBYOL): loaded through PLUGINS without being
installed, it pretrains through tools/run_net.py on the generated data (its loss falls), and a
run killed mid-epoch resumes exactly (same losses at every iteration, same final weights)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from metrics_file import read_metrics as _metrics
from tiny_runs import TINY_PRETRAIN

from ascnet.engine.plugins import load_config
from ascnet.utils.checkpoint import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG = os.path.join("projects", "RhoBYOL", "configs", "RhoBYOL_R3D18_quickstart.yaml")
ITERS = 12
# The project's quickstart as it is, shrunk for CPU time only.
TINY = TINY_PRETRAIN + [
    "TRAIN.MAX_ITERS", str(ITERS), "TRAIN.CHECKPOINT_ITERS", "5", "TRAIN.CHECKPOINT_PERIOD", "100",
]


@pytest.fixture(scope="module")
def plugin_path():
    # Not pip-installed: the project folder goes on the path, as PLUGINS users do.
    path = os.path.join(REPO, "projects", "RhoBYOL")
    sys.path.insert(0, path)
    yield path
    sys.path.remove(path)


def _run(repo_root, plugin_path, out, data, *extra, extra_path="", popen=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, plugin_path, repo_root, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, os.path.join(repo_root, "tools", "run_net.py"), "--cfg", os.path.join(repo_root, CFG),
           *TINY, "OUTPUT_DIR", str(out), "DATA.PATH_TO_DATA_DIR", str(data), *extra]
    if popen:
        return subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    r = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _final(out):
    return Checkpointer.read(Checkpointer(str(out), torch.nn.Identity()).get_checkpoint_file())


def test_loads_through_plugins_and_builds(repo_root, plugin_path):
    cfg = load_config(os.path.join(repo_root, CFG), TINY)
    assert cfg.MODEL.META_ARCH == "RhoBYOL" and list(cfg.DATA.SPEEDS) == [1, 1] and cfg.RHOBYOL.LOSS == "ACPLoss"
    from ascnet.engine.resume import model_defining_keys
    from ascnet.modeling import build_model

    assert {"RHOBYOL.", "TEACHER.", "DATA.SPEEDS"} <= set(model_defining_keys(cfg))
    torch.manual_seed(0)
    model = build_model(cfg)
    keys = model.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"online", "target", "iteration"}
    assert any(k.startswith("online.predictor.") for k in keys) and not any(k.startswith("target.predictor") for k in keys)
    clips = torch.randn(2, 3, 3, 8, 32, 32)  # rho = 3
    model.rho = 3
    out = model({"clips": clips, "index": torch.arange(2)})
    # BYOL's loss over the 6 ordered pairs of different clips, divided by rho (rho - 1) / 2 = 3
    (p,), (z,) = model.online(clips.flatten(0, 1)), model.target(clips.flatten(0, 1))
    p, z = torch.nn.functional.normalize(p, dim=1).view(2, 3, -1), torch.nn.functional.normalize(z, dim=1).view(2, 3, -1)
    pairs = [(2 - 2 * (p[:, i] * z[:, j]).sum(1)).mean() for i in range(3) for j in range(3) if i != j]
    assert out["loss_byol"].requires_grad
    torch.testing.assert_close(out["loss_byol"], sum(pairs) / 3)
    assert model.after_step(0, 10)["ema_tau"] == pytest.approx(cfg.TEACHER.EMA_BASE)
    with pytest.raises(ValueError, match=r"DATA.SPEEDS \[1, 1\]"):
        build_model(load_config(os.path.join(repo_root, CFG), TINY + ["DATA.SPEEDS", "[1]"]))


@pytest.fixture(scope="module")
def reference_run(plugin_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("rho_byol")
    _run(REPO, plugin_path, root / "ref", root / "data")
    return root / "ref", root / "data"


def test_loss_falls_on_generated_data(reference_run):
    m = _metrics(reference_run[0])
    assert sorted(k for k in m if "loss" in m[k]) == list(range(1, ITERS + 1))
    first = sum(m[i]["loss_byol"] for i in (1, 2, 3)) / 3
    last = sum(m[i]["loss_byol"] for i in (ITERS - 2, ITERS - 1, ITERS)) / 3
    assert last < 0.9 * first, (first, last)
    assert all(k in m[ITERS] for k in ("ema_tau", "collapse_std", "collapse_cos", "byol"))


def test_exact_resume_after_sigkill(repo_root, plugin_path, reference_run, tmp_path):
    ref_out, data = reference_run
    out = tmp_path / "run"
    # Parks the run inside iteration 7 (after the checkpoint of iteration 5, mid-epoch) until the
    # SIGKILL comes; the resumed run does not load it.
    (tmp_path / "park_rho.py").write_text(
        "import time\nfrom rho_byol import RhoBYOL\n_forward = RhoBYOL.forward\n"
        "def forward(self, batch):\n"
        "    if self.training and int(self.iteration) == 6:\n        time.sleep(3600)\n"
        "    return _forward(self, batch)\nRhoBYOL.forward = forward\n"
    )
    proc = _run(repo_root, plugin_path, out, data, "PLUGINS", "['rho_byol', 'park_rho']", extra_path=str(tmp_path), popen=True)
    pointer = out / "checkpoints" / "last_checkpoint"
    try:
        deadline = time.time() + 300
        while not pointer.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and _final(out)["iteration"] == 5
    r = _run(repo_root, plugin_path, out, data, "TRAIN.AUTO_RESUME", "True")
    assert "Resumed from" in r.stdout
    ref, got = _metrics(ref_out), _metrics(out)
    for it in range(1, ITERS + 1):
        for key in ("loss", "loss_byol", "lr", "ema_tau", "collapse_std"):
            assert got[it][key] == ref[it][key], (it, key, got[it][key], ref[it][key])
    ref_model, got_model = _final(ref_out)["model"], _final(out)["model"]
    assert ref_model.keys() == got_model.keys()
    for k in ref_model:
        assert torch.equal(ref_model[k], got_model[k]), k
