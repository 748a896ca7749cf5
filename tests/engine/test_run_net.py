"""tools/run_net.py as users run it: --help, --dry-run, config errors; shipped configs load."""
import glob
import os
import subprocess
import sys

import pytest

from ascnet.config import load_config


def _run(repo_root, *args, timeout=120):
    return subprocess.run(
        [sys.executable, os.path.join(repo_root, "tools", "run_net.py"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=repo_root,
    )


def test_help_exits_zero_with_examples(repo_root):
    r = _run(repo_root, "--help")
    assert r.returncode == 0, r.stderr
    assert "--dry-run" in r.stdout and "--resume" in r.stdout and "--slurm" in r.stdout
    assert "examples:" in r.stdout and "ASCNet_R3D18_quickstart.yaml" in r.stdout


def test_dry_run_prints_resolved_config_and_runs_nothing(repo_root, tmp_path):
    out = tmp_path / "out"
    r = _run(repo_root, "--cfg", "configs/Synthetic/ASCNet_R3D18_quickstart.yaml", "--dry-run", "--resume",
             "SOLVER.BASE_LR", "0.3", "--opts", "OUTPUT_DIR", str(out), "TRAIN.MAX_ITERS", "7")
    assert r.returncode == 0, r.stderr
    assert "BASE_LR: 0.3" in r.stdout and "MAX_ITERS: 7" in r.stdout and "AUTO_RESUME: true" in r.stdout
    assert "Nothing was run" in r.stdout
    assert not out.exists()


def test_config_mistake_is_reported_without_traceback(repo_root, capsys):
    sys.path.insert(0, os.path.join(repo_root, "tools"))
    try:
        import run_net
    finally:
        sys.path.pop(0)
    cfg = os.path.join(repo_root, "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")
    assert run_net.main(["--cfg", cfg, "--dry-run", "SOLVER.BASE_LRR", "1"]) == 2
    assert "Did you mean 'SOLVER.BASE_LR'" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Kinetics", "*.yaml")))
                         + [os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Synthetic", "ASCNet_R3D18_quickstart.yaml")])
def test_pretrain_configs_load(path):
    cfg = load_config(path)
    assert cfg.TASK == "pretrain" and cfg.MODEL.META_ARCH == "ASCNet" and list(cfg.ASCNET.SPEEDS) == [1, 2]
    if "Kinetics" in path:
        assert cfg.TRAIN.DATASET == "Kinetics" and cfg.MEMORY_BANK.SIZE == 32768 and cfg.NUM_GPUS == 8
        assert cfg.SOLVER.BASE_LR == 0.1 and cfg.SOLVER.BASE_BATCH_SIZE == 64 and cfg.SOLVER.MAX_EPOCH == 200
        assert cfg.AMP.ENABLE and cfg.DATA.NUM_FRAMES == 16
    else:
        assert cfg.NUM_GPUS == 0 and cfg.AUG.FLIP_PROB == 0.0 and cfg.TENSORBOARD.ENABLE
        assert cfg.TRAIN.DATASET == "Synthetic" and cfg.DATA.NUM_FRAMES == 8 and cfg.DATA.CROP_SIZE <= 64
